"""``tenure decide``, ``explain``, ``review …``, ``policies``: a shell over :mod:`tenure.decide`."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from tenure._cli_common import JsonOption, ProjectOption, errors, out, print_json
from tenure._cli_common import project as project_at

__all__ = ["decide", "explain", "journeys_app", "policies_app", "review_app", "templates_app"]

review_app = typer.Typer(
    help="The human-review queue: actions waiting for approval.", no_args_is_help=True
)
policies_app = typer.Typer(help="Policies and templates, and their versions.", no_args_is_help=True)
templates_app = typer.Typer(
    help="Message templates: list them, preview one against a real customer.",
    no_args_is_help=True,
)
journeys_app = typer.Typer(
    help="Journeys: multi-step sequences under the same guardrails.", no_args_is_help=True
)

ActorOption = Annotated[
    str | None, typer.Option(help="Who decides (kept on the item and in the audit log).")
]


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def decide(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would get what, and write nothing.")
    ] = False,
    publish: Annotated[
        bool,
        typer.Option(help="First publish the warehouse's scores into the customer state."),
    ] = True,
    limit: Annotated[int, typer.Option(help="Decisions to list (0: none).")] = 20,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run one decision cycle: policies, arbitration and guardrails over every customer."""
    from tenure.decide import decide as run_decide
    from tenure.decide import publish_state

    with errors(), project_at(project_dir) as opened:
        at: dt.datetime = opened.clock()
        published = publish_state(opened, as_of=at) if publish else None
        report = run_decide(opened, now=at, dry_run=dry_run)
    rows: list[dict[str, Any]] = [
        {
            "decision_id": d.id,
            "account_id": d.account_id,
            "status": d.status,
            "rule": d.chosen.rule.key if d.chosen else None,
            "channel": d.chosen.rule.action.channel.value if d.chosen else None,
            "to": (d.delivery[0] if d.delivery else None),
            "why": d.explanation.splitlines()[0],
            "guardrails": [c.as_dict() for c in d.checks],
        }
        for d in report.decisions
    ]
    summary = {
        "cycle_id": report.cycle_id,
        "dry_run": report.dry_run,
        "already_decided": report.already_decided,
        "published": published,
        "customers": report.customers,
        "by_status": report.by_status,
        "by_rule": report.by_rule,
        "seconds": round(report.seconds, 2),
    }
    if json_out:
        print_json({**summary, "decisions": rows})
        return
    if report.already_decided:
        out.print(f"cycle {report.cycle_id} was already decided; nothing new")
        return
    verb = "would decide" if dry_run else "decided"
    out.print(
        f"{verb} for {report.customers:,} customers in {report.seconds:.1f} s: "
        + (", ".join(f"{n} {s}" for s, n in sorted(report.by_status.items())) or "no action"),
        highlight=False,
    )
    if limit and rows:
        table = Table("account", "status", "rule", "channel", "to", "guardrails")
        for row in rows[:limit]:
            said = ", ".join(
                f"{g['guardrail']}:{g['verdict']}"
                for g in row["guardrails"]
                if g["verdict"] != "pass"
            )
            table.add_row(
                row["account_id"], row["status"], row["rule"] or "—", row["channel"] or "—",
                row["to"] or "—", said or "all pass",
            )  # fmt: skip
        out.print(table)


def explain(
    decision_id: Annotated[str, typer.Argument(help="A decision id (d_…).")],
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Explain one decision: rule, evidence, models, each guardrail's verdict, delivery."""
    from tenure._config_decide import parse_duration
    from tenure.decide import decision_outcomes, explain_decision, get_decision

    with errors(), project_at(project_dir) as opened:
        with opened.store.connect() as connection:
            found = get_decision(connection, decision_id)
            text = explain_decision(connection, decision_id)
        window = opened.config.decide.attribution_window
        outcomes = decision_outcomes(
            opened.warehouse,
            [(decision_id, found["account_id"], found["decided_at"])],
            window=parse_duration(window),
        )[decision_id]
    if json_out:
        print_json({**found, "outcomes": outcomes})
        return
    out.print(text, markup=False, highlight=False)
    if outcomes:
        said = "; ".join(f"{o.kind} ({o.event}) {o.at:%Y-%m-%d %H:%M}" for o in outcomes)
        out.print(f"Outcomes: {said}.", markup=False, highlight=False)
    else:
        out.print(
            f"Outcomes: none yet (message events by decision_id; the account's purchases, "
            f"plan changes and cancellations within {window}).",
            markup=False,
            highlight=False,
        )


@review_app.command("list")
def review_list(
    status: Annotated[str, typer.Option(help="pending, approved, rejected, expired or all.")] = (
        "pending"
    ),
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """List review items."""
    from tenure.decide import list_reviews

    with errors(), project_at(project_dir) as opened, opened.store.connect() as connection:
        items = list_reviews(connection, status=None if status == "all" else status)
    if json_out:
        print_json(items)
        return
    table = Table("id", "account", "rule", "channel", "reason", "status", "expires")
    for item in items:
        table.add_row(
            str(item["id"]), item["account_id"], f"{item['policy']}/{item['rule_id']}",
            item["channel"], item["reason"], item["status"], _when(item["expires_at"]),
        )  # fmt: skip
    out.print(table)
    if not items:
        out.print(f"no {status} review items")


@review_app.command("approve")
def review_approve(
    review_id: Annotated[int, typer.Argument(help="Review item id.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    actor: ActorOption = None,
    project_dir: ProjectOption = None,
) -> None:
    """Approve: the guardrails run again now, and the action is queued."""
    from tenure.decide import approve

    with errors(), project_at(project_dir) as opened:
        status = approve(opened, review_id, actor=_actor(actor), note=note)
    out.print(f"review item {review_id} approved; the action is {status}")


@review_app.command("reject")
def review_reject(
    review_id: Annotated[int, typer.Argument(help="Review item id.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    actor: ActorOption = None,
    project_dir: ProjectOption = None,
) -> None:
    """Reject: nothing is sent."""
    from tenure.decide import reject

    with errors(), project_at(project_dir) as opened:
        reject(opened, review_id, actor=_actor(actor), note=note)
    out.print(f"review item {review_id} rejected; nothing will be sent")


@policies_app.command("list")
def policies_list(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """The policies and templates in the project, and their stored versions."""
    from tenure.decide import load_policies, load_templates, versions

    with errors(), project_at(project_dir) as opened:
        settings = opened.config.decide
        loaded = load_policies(opened.root / settings.policies_dir)
        templates = load_templates(opened.root / settings.templates_dir)
        with opened.store.connect() as connection:
            stored = versions(connection, "policy") + versions(connection, "template")
    rules: list[dict[str, Any]] = []
    for compiled in loaded.rules:
        rule, experiment = compiled.rule, compiled.rule.experiment
        arms = (
            []
            if experiment is None
            else [(a, compiled.with_arm(a).action) for a in experiment.arms]
        )
        rules.append(
            {
                "policy": compiled.policy,
                "rule": rule.id,
                "priority": rule.priority,
                "when": rule.when,
                "channel": compiled.action.channel.value if experiment is None else None,
                "template": compiled.action.template if experiment is None else None,
                "experiment": None
                if experiment is None
                else {
                    "id": experiment.id,
                    "control": experiment.control,
                    "arms": {
                        a: {
                            "percent": experiment.percents[a],
                            "channel": None if a == experiment.control else act.channel.value,
                            "template": None if a == experiment.control else act.template,
                        }
                        for a, act in arms
                    },
                },
            }
        )
    if json_out:
        print_json({"rules": rules, "templates": sorted(templates.templates), "versions": stored})
        return
    table = Table("policy", "rule", "priority", "channel", "template", "when")
    for r in rules:
        channel, template = r["channel"], r["template"]
        if r["experiment"] is not None:
            arms = r["experiment"]["arms"]
            channel = f"experiment {r['experiment']['id']}: " + ", ".join(
                f"{a} {v['percent']:.3g} % {v['channel'] or '(control)'}" for a, v in arms.items()
            )
            template = ", ".join(v["template"] for v in arms.values() if v["template"])
        table.add_row(r["policy"], r["rule"], str(r["priority"]), channel, template, r["when"])
    out.print(table)
    latest: dict[tuple[str, str], Any] = {}
    for v in stored:
        latest[(str(v["kind"]), str(v["name"]))] = v
    for (kind, name), v in sorted(latest.items()):
        out.print(f"{kind} {name}: version {v['version']} ({_when(v['created_at'])})")


@journeys_app.command("run")
def journeys_run(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """Advance every run that is due and enroll the customers who now qualify."""
    from tenure.decide import run_journeys

    with errors(), project_at(project_dir) as opened:
        report = run_journeys(opened, actor=_actor(None))
    if json_out:
        print_json(report)
        return
    out.print(
        f"{report.entered:,} entered, {report.advanced:,} advanced, {report.sent:,} sent, "
        f"{report.blocked:,} blocked, {report.completed:,} completed, {report.exited:,} exited",
        highlight=False,
    )
    for name, active in sorted(report.by_journey.items()):
        out.print(f"{name}: {active:,} customers in the journey", highlight=False)


@journeys_app.command("list")
def journeys_list(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """The project's journeys and their steps."""
    from tenure.decide import load_journeys

    with errors(), project_at(project_dir) as opened:
        loaded = load_journeys(opened.root / opened.config.decide.journeys_dir)
    found: list[dict[str, Any]] = []
    for name, item in loaded.items():
        steps = []
        for step in item.journey.steps:
            if step.send is not None:
                steps.append(f"{step.id}: send {step.send.channel} {step.send.template}")
            elif step.wait is not None:
                steps.append(f"{step.id}: wait {step.wait}")
            else:
                steps.append(f"{step.id}: branch")
        found.append(
            {
                "journey": name,
                "enter": item.journey.enter,
                "goal": item.journey.goal,
                "steps": steps,
            }
        )
    if json_out:
        print_json(found)
        return
    for entry in found:
        out.print(f"[bold]{entry['journey']}[/]: enter when {entry['enter']}", highlight=False)
        for step in entry["steps"]:
            out.print(f"  {step}", markup=False, highlight=False)
    if not found:
        out.print("no journeys (put them in the journeys folder; see docs/decide.md)")


@templates_app.command("list")
def templates_list(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """The project's templates, their channels and content hashes."""
    from tenure.decide import load_templates

    with errors(), project_at(project_dir) as opened:
        loaded = load_templates(opened.root / opened.config.decide.templates_dir)
    found = [
        {"template": t.name, "channel": t.channel.value, "description": t.description,
         "sha256": t.content_hash}
        for t in loaded.templates.values()
    ]  # fmt: skip
    if json_out:
        print_json(found)
        return
    table = Table("template", "channel", "about", "sha256")
    for item in found:
        table.add_row(item["template"], item["channel"], item["description"], item["sha256"][:12])
    out.print(table)


@templates_app.command("preview")
def templates_preview(
    name: Annotated[str, typer.Argument(help="Template name (its file name without .yaml).")],
    account: Annotated[str, typer.Option(help="The account to render it for (its state).")],
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Render a template for a real customer exactly as a send would, without sending."""
    from tenure.decide import preview_template

    with errors(), project_at(project_dir) as opened:
        recipient, payload = preview_template(opened, name, account)
    if json_out:
        print_json({"recipient": recipient, "payload": payload})
        return
    out.print(f"[bold]to[/] {recipient}", highlight=False)
    for key, value in payload.items():
        if key == "consent_identifiers" or value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, indent=2)
        out.print(f"[bold]{key}[/]\n{text}", highlight=False)
