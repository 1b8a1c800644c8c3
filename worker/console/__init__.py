"""The operator console at `/`: server-rendered pages over the same service layer as the CLI.

Jinja2 templates (autoescaped) in Chinese or English, enhanced by a vendored htmx where
JavaScript runs and complete without it: every form posts normally. Who may use it, the
session cookie and CSRF: `console.session`.

    /            dashboard (live campaigns, sends per minute)     /campaigns ...  campaigns
    /accounts    sender accounts                                  /contacts       CSV upload
    /inbox       conversations waiting for a person               /signin /signout /lang/..
    /static/     htmx.min.js (htmx 2.0.11, 0BSD), console.css, console.js
"""
