"""Plain courtesy: a message that is only a greeting, thanks or acknowledgement.

Such a message is answered with a courtesy (greeting, thanks) or with nothing (an
acknowledgement such as `好的`, `收到`, `👍`): neither needs the knowledge nor a person. The
whole message must be courtesy, so `你好，请问多少钱` goes on to retrieval. A message of only
punctuation or emoji counts as an acknowledgement unless it has a question mark (`？？` may
mean "hello, anyone?", which a person should see).
"""

from __future__ import annotations

import re
from enum import StrEnum

from worker.replies.classify import words
from worker.replies.text import compact


class Courtesy(StrEnum):
    GREETING = "greeting"
    THANKS = "thanks"
    ACKNOWLEDGEMENT = "acknowledgement"


_GREETING = words(
    *(
        "你好",
        "您好",
        "你们好",
        "大家好",
        "老师好",
        "老师们好",
        "哈喽",
        "哈啰",
        "嗨",
        "早",
        "早安",
        "早上好",
        "上午好",
    ),
    *("中午好", "下午好", "晚上好", "在吗", "在不在", "在么", "在嘛", "有人吗", "有人在吗"),
    *("hi", "hello", "hey", "hiya", "goodmorning", "goodafternoon", "goodevening"),
)
_THANKS = words(
    *("谢谢", "多谢", "感谢", "谢啦", "谢了", "辛苦了", "辛苦", "thanks", "thankyou", "thx"),
    *("ty", "tks", "thanksalot", "thankyousomuch", "muchappreciated", "appreciateit"),
)
_ACK = words(
    *("好", "好的", "好滴", "好嘞", "好哒", "好吧", "行", "可以", "嗯", "恩", "哦", "噢", "喔"),
    *("收到", "知道了", "明白", "明白了", "了解", "懂了", "哈", "呵呵", "嘿嘿", "666", "晚安"),
    *("拜拜", "再见", "ok", "okay", "okk", "bye", "byebye", "goodnight", "cool", "great"),
    *("nice", "gotit", "sure", "alright", "noted"),
)
_FILLER = words(
    *("老师", "同学", "亲", "您", "你", "啦", "呀", "啊", "哈", "哦", "呢", "哒", "了", "嘛"),
    *("there", "teacher", "so", "much", "very"),
)
_COURTESY = re.compile(f"(?:{_FILLER})*(?:(?:{_GREETING}|{_THANKS}|{_ACK})(?:{_FILLER})*)+")
_THANKS_IN = re.compile(_THANKS)
_GREETING_IN = re.compile(_GREETING)


def courtesy(text: str) -> Courtesy | None:
    """What kind of courtesy the whole of `text` is, or None if it says anything more."""
    short = compact(text)
    if not short:
        return None if "?" in text or "？" in text else Courtesy.ACKNOWLEDGEMENT
    if not _COURTESY.fullmatch(short):
        return None
    if _THANKS_IN.search(short):
        return Courtesy.THANKS
    if _GREETING_IN.search(short):
        return Courtesy.GREETING
    return Courtesy.ACKNOWLEDGEMENT
