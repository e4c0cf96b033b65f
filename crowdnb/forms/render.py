"""A form as accessible HTML: every control labelled, help and errors tied to it, groups in fieldsets.

The markup works without JavaScript (a plain POST, every section open); ``assets/forms.js`` adds the
checks, messages, collapsing and the config's triggers, reading what it needs from the JSON this
module embeds. Titles, instructions and help are HTML (the config's author writes them, as in
Mephisto); labels, tooltips, placeholders and option labels are text.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from ..pages.page import script_json
from .model import Form, FormField, Section, Trigger
from .rules import Rules

INPUT_TYPES = {"input": "text", "email": "email", "number": "number", "password": "password", "hidden": "hidden"}


def _attrs(**values: Any) -> str:
    """HTML attributes, escaped; ``True`` writes a bare attribute, ``None``/``False``/"" leave it out."""
    out = []
    for key, value in values.items():
        name = key.rstrip("_").replace("_", "-")
        if value is True:
            out.append(f" {name}")
        elif value not in (None, False, "") or (name == "value" and value == ""):  # an option's value="" counts
            out.append(f' {name}="{escape(str(value))}"')
    return "".join(out)


def _classes(*names: str) -> str:
    return " ".join(n for part in names for n in part.split())


def _html(text: str) -> str:
    """Author-written HTML from the config, as is."""
    return str(Markup(text))


def _required_mark(field: FormField) -> str:
    if not field.rules.required:
        return ""
    # radios and selects say "required" to assistive technology themselves; a checkbox group cannot
    spoken = '<span class="cf-sr"> (required)</span>' if field.type == "checkbox" else ""
    return f'<span class="cf-required" aria-hidden="true"> *</span>{spoken}'


def _described(field: FormField) -> str:
    return " ".join([f"{field.id}-help"] * bool(field.help) + [f"{field.id}-error"])


def render_field(field: FormField) -> str:
    """One field with its label, help and error slot."""
    if field.type == "hidden":
        return f"<input{_attrs(type='hidden', id=field.id, name=field.name, value=field.value)}>"
    rules = field.rules
    common = {"aria_describedby": _described(field), "title": field.tooltip}
    if field.type in ("radio", "checkbox"):
        control = _choices(field, common)
    else:
        label = f'<label class="cf-label" for="{escape(field.id)}">{escape(field.label)}{_required_mark(field)}</label>'
        control = label + _control(field, rules, common)
    preview = f'<img class="cf-preview" id="{escape(field.id)}-preview" alt="" hidden>' if field.show_preview else ""
    help_ = f'<div class="cf-help" id="{escape(field.id)}-help">{_html(field.help)}</div>' if field.help else ""
    error = f'<p class="cf-error" id="{escape(field.id)}-error"></p>'
    wrapper = _attrs(class_=_classes("cf-field field", f"cf-type-{field.type}", field.classes), data_name=field.name)
    return f"<div{wrapper}>{control}{preview}{help_}{error}</div>"


def _control(field: FormField, rules: Rules, common: dict[str, Any]) -> str:
    texty = field.type in ("input", "email", "password", "textarea")
    limits = {"minlength": rules.min_length, "maxlength": rules.max_length} if texty else {}
    required = {"required": rules.required}
    if field.type == "textarea":
        attrs = _attrs(
            id=field.id, name=field.name, rows=4, placeholder=field.placeholder, **required, **limits, **common
        )
        return f"<textarea{attrs}>{escape(field.value)}</textarea>"
    if field.type == "select":
        chosen = set(field.value) if isinstance(field.value, tuple) else {field.value}
        options = "".join(
            f"<option{_attrs(value=o.value, selected=o.value in chosen)}>{escape(o.label)}</option>"
            for o in field.options
        )
        attrs = _attrs(id=field.id, name=field.name, multiple=field.multiple, **required, **common)
        return f"<select{attrs}>{options}</select>"
    if field.type == "file":
        accept = ",".join(f".{ext}" for ext in rules.file_extensions)
        return f"<input{_attrs(type='file', id=field.id, name=field.name, accept=accept, **required, **common)}>"
    extra = {"step": "any", "inputmode": "decimal"} if field.type == "number" else {}
    attrs = _attrs(type=INPUT_TYPES[field.type], id=field.id, name=field.name, value=field.value,
                   placeholder=field.placeholder, **required, **limits, **extra, **common)  # fmt: skip
    return f"<input{attrs}>"


def _choices(field: FormField, common: dict[str, Any]) -> str:
    """Radio buttons or checkboxes: a fieldset whose legend is the field's label."""
    chosen = set(field.value) if isinstance(field.value, tuple) else {field.value}
    items = []
    for index, option in enumerate(field.options):
        option_id = f"{field.id}-{index}"
        # a required radio group is native (one of them); a required checkbox group is checked by script
        required = field.type == "radio" and field.rules.required
        box = _attrs(type=field.type, id=option_id, name=field.name, value=option.value,
                     checked=option.value in chosen, required=required)  # fmt: skip
        items.append(
            f'<div class="cf-option"><input{box}><label for="{escape(option_id)}">{escape(option.label)}</label></div>'
        )
    legend = f'<legend class="cf-label">{escape(field.label)}{_required_mark(field)}</legend>'
    return f"<fieldset{_attrs(class_='cf-choices', id=field.id, **common)}>{legend}{''.join(items)}</fieldset>"


def _section(section: Section, index: int) -> str:
    sid = escape(section.id)
    title = _html(section.title)
    if section.collapsable:
        heading = (
            f'<button type="button" class="cf-toggle" aria-expanded="true" aria-controls="{sid}-body">{title}</button>'
        )
    else:
        heading = title
    parts = [
        f'<section{_attrs(class_=_classes("cf-section section", section.classes), id=section.id)} aria-labelledby="{sid}-title">',
        f'<h3 class="cf-section-title" id="{sid}-title">{heading}</h3>',
        f'<div class="cf-section-body" id="{sid}-body">',
    ]
    if section.instruction:
        parts.append(f'<div class="cf-instruction">{_html(section.instruction)}</div>')
    parts.append(f'<div class="cf-section-errors" id="{sid}-errors"></div>')
    for fieldset in section.fieldsets:
        parts.append(f"<fieldset{_attrs(class_=_classes('cf-fieldset', fieldset.classes), id=fieldset.id)}>")
        if fieldset.title:
            parts.append(f'<legend class="cf-legend">{_html(fieldset.title)}</legend>')
        if fieldset.instruction:
            parts.append(f'<div class="cf-instruction">{_html(fieldset.instruction)}</div>')
        for row in fieldset.rows:
            parts.append(f"<div{_attrs(class_=_classes('cf-row', row.classes), id=row.id)}>")
            parts.extend(render_field(f) for f in row.fields)
            parts.append("</div>")
            if row.help:
                parts.append(f'<div class="cf-help">{_html(row.help)}</div>')
        if fieldset.help:
            parts.append(f'<div class="cf-help">{_html(fieldset.help)}</div>')
        parts.append("</fieldset>")
    parts.append("</div></section>")
    return "".join(parts)


def render_form(form: Form, client: dict[str, Any]) -> str:
    """The form's HTML (inside crowdnb's page shell), with ``client`` embedded for ``forms.js``."""
    parts = [f"<div{_attrs(class_=_classes('cf-form', form.classes), id=form.id or 'cf-form')}>"]
    if form.title or form.instruction:
        parts.append('<div class="cf-header">')
        if form.title:
            parts.append(f'<h2 class="cf-title">{_html(form.title)}</h2>')
        if form.instruction:
            parts.append(f'<div class="cf-instruction">{_html(form.instruction)}</div>')
        parts.append("</div>")
    # announced when the page script fills it after a refused submit; empty (and invisible) until then
    parts.append('<div id="cf-summary" class="cf-summary" role="alert" tabindex="-1"></div>')
    parts.extend(_section(section, index) for index, section in enumerate(form.sections))
    submit = form.submit
    if submit.instruction:
        parts.append(f'<div class="cf-instruction cf-submit-instruction">{_html(submit.instruction)}</div>')
    button = _attrs(
        type="submit",
        id="crowd-submit",
        class_=_classes("crowd-submit cf-submit", submit.classes),
        title=submit.tooltip,
    )
    parts.append(f"<button{button}>{escape(submit.text)}</button>")
    parts.append(f'<script type="application/json" id="cf-config">{script_json(client)}</script>')
    parts.append("</div>")
    return "".join(parts)


def _triggers(triggers: tuple[Trigger, ...]) -> list[list[Any]]:
    return [[t.event, t.function, list(t.args)] for t in triggers]


def validators_of(rules: Rules) -> dict[str, Any]:
    """A field's validators as forms.js reads them (Mephisto's names)."""
    out: dict[str, Any] = {"required": rules.required}
    if rules.min_length is not None:
        out["minLength"] = rules.min_length
    if rules.max_length is not None:
        out["maxLength"] = rules.max_length
    if rules.regexp is not None:
        out["regexp"] = list(rules.regexp)
    if rules.file_extensions:
        out["fileExtension"] = list(rules.file_extensions)
    out.update(dict(rules.custom))
    return out


def client_config(form: Form, raw: dict[str, Any], modules: dict[str, str | None]) -> dict[str, Any]:
    """What ``forms.js`` needs: each field's rules and triggers, the sections', the modules to import.

    ``raw`` is the config itself: trigger functions get its objects, as in Mephisto.
    """
    from .tokens import elements

    objects = {where: item for item, where in elements(raw)}
    fields = {}
    for field in form.fields():
        fields[field.name] = {
            "name": field.name,
            "type": field.type,
            "id": field.id,
            "label": field.label,
            "multiple": field.multiple,
            "options": [o.value for o in field.options],
            "validators": validators_of(field.rules),
            "triggers": _triggers(field.triggers),
            "config": objects.get(field.path, {}),
        }
    sections = [
        {"id": s.id, "collapsable": s.collapsable, "collapsed": s.collapsable and s.initially_collapsed,
         "triggers": _triggers(s.triggers), "config": {k: v for k, v in objects.get(f"form.sections[{i}]", {}).items() if k != "fieldsets"}}
        for i, s in enumerate(form.sections)
    ]  # fmt: skip
    submit = {"triggers": _triggers(form.submit.triggers), "config": objects.get("form.submit_button", {})}
    return {"fields": fields, "sections": sections, "submit": submit, "modules": modules}
