"""Create Chat Completion, then send the reply by email: the platform page's workflow in Python.

    python examples/python/chat_to_email.py --to ops@example.com --smtp-port 1025 'Say hello'

The connection comes from the environment as for the CLI (`OPENAI_API_KEY`, or
`OPENAI_PROVIDER=local` for the embedded model). The mail server is plain SMTP by default
(`--smtp-host`, `--smtp-port`); `--starttls` and `SMTP_USER`/`SMTP_PASSWORD` for a real one.

Exit codes are the connector's (0 sent, 2 invalid input, 3 rejected, 4 transient, 5 invalid
response), and 6 when the mail server refused or could not be reached; when the step fails, no
email is sent and stdout holds `{"error": {...}}`.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import sys
import time
from email.message import EmailMessage

import connector

ACTION = "create_chat_completion"
MAIL_FAILED = 6


def chat(form: dict, attempts: int = 2) -> dict:
    """Run the step; on a transient failure wait as long as the error says, then try once more.

    This is the branching a workflow does on the error object: `retryable` (and `type`) says
    whether the same call may work later, `retry_after` how long to wait.
    """
    for attempt in range(1, attempts + 1):
        try:
            return connector.run(ACTION, form)
        except connector.ConnectorError as exc:
            error = exc.to_dict()
            if not error["retryable"] or attempt == attempts:
                raise
            wait = 5.0 if error.get("retry_after") is None else error["retry_after"]
            print(f"warning: {error['type']}; trying again in {wait:g} s", file=sys.stderr)
            time.sleep(wait)
    raise AssertionError("unreachable")


def send_mail(args: argparse.Namespace, body: str) -> None:
    """Send ``body`` as a plain-text email with the arguments' addresses and subject."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = args.sender, args.to, args.subject
    mail.set_content(body)
    with smtplib.SMTP(args.smtp_host, args.smtp_port, timeout=30) as smtp:
        if args.starttls:
            smtp.starttls()
        if os.environ.get("SMTP_USER"):
            smtp.login(os.environ["SMTP_USER"], os.environ.get("SMTP_PASSWORD", ""))
        smtp.send_message(mail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("messages", help="the Messages field: plain text or a JSON list")
    parser.add_argument("--model", default=os.environ.get("MODEL", "gpt-4o-mini"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--to", required=True)
    parser.add_argument("--from", dest="sender", default="connector@localhost")
    parser.add_argument("--subject", default="Chat completion")
    parser.add_argument("--smtp-host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=25)
    parser.add_argument("--starttls", action="store_true")
    args = parser.parse_args(argv)

    form = {"model": args.model, "messages": args.messages}
    form |= dict(item.partition("=")[::2] for item in args.set)
    try:
        output = chat(form)
        content = output["choices"][0]["message"]["content"]
        if not content:  # e.g. a tool call or a refusal: nothing to mail
            reason = output["choices"][0]["finish_reason"]
            raise connector.InvalidResponse(
                f"The reply has no text to send (finish_reason: {reason}).", partial=output
            )
    except connector.ConnectorError as exc:
        error = exc.to_dict()
        print(json.dumps({"error": error}, indent=2))
        if error["type"] == "invalid_input":  # fix the form: each field says what is wrong
            for field in error["fields"]:
                print(f"fix {field['name']}: {field['message']}", file=sys.stderr)
        else:
            print(f"error ({error['type']}): {error['message']}", file=sys.stderr)
        return exc.exit_code  # no email: a failed step must not become an empty message

    try:
        send_mail(args, content)
    except (smtplib.SMTPException, OSError) as exc:
        message = f"The mail to {args.to} was not sent: {exc}"
        print(json.dumps({"error": {"type": "mail", "message": message, "content": content}}))
        print(f"error (mail): {message}", file=sys.stderr)
        return MAIL_FAILED
    print(json.dumps({"sent_to": args.to, "subject": args.subject, "content": content}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
