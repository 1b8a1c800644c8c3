"""Message templates: Jinja2 in an immutable sandbox with strict undefined variables.

A campaign compiles its template once (`MessageRenderer`) and renders it per recipient. A
template sees `contact` (name, external_id, tags, attrs; never the internal id), every campaign
variable, and `track(url)`. Every failure, at compile or render time, is one `TemplateError`
line naming the file and the template line, so `campaigns create` and `preview` report it
before anything is sent (`validate_template`). The parts live in `worker/rendering/`.
"""

from worker.rendering.errors import TemplateError
from worker.rendering.messages import (
    RESERVED_NAMES,
    ContactView,
    MessageRenderer,
    ProblemTally,
    RecipientView,
    TemplateProblem,
    check_length,
    validate_template,
)
from worker.rendering.sandbox import REPLIES_DIR, TEMPLATE_SUFFIX, list_templates, render_file
from worker.rendering.tracking import TOKEN_PARAM, add_query_params, recipient_token

__all__ = [
    "REPLIES_DIR",
    "RESERVED_NAMES",
    "TEMPLATE_SUFFIX",
    "TOKEN_PARAM",
    "ContactView",
    "MessageRenderer",
    "ProblemTally",
    "RecipientView",
    "TemplateError",
    "TemplateProblem",
    "add_query_params",
    "check_length",
    "list_templates",
    "recipient_token",
    "render_file",
    "validate_template",
]
