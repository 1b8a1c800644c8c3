"""What a siyu process tells the people who run it: metrics, logs and account events.

    metrics.py    Prometheus registries: the database's gauges and the process's own figures
    dbstats.py    the database reads behind the gauges, one cheap GROUP BY each
    logs.py       the logging configuration of every process (text or JSON, always masked)
    events.py     structured events (an account banned, paused, cooling down)

It sits beside `logmask` at the bottom of the import graph: the layers above call it, it
imports nothing of them.
"""
