"""Whether a role's statements allow one request, decided as IAM decides it.

The template tests compare statements as written; this evaluates them, so a
test can say what a role may and may not do (a RotateSecret that names a
function, on a secret rotated by another) rather than how its conditions are
spelled. It follows the IAM User Guide's evaluation logic for identity-based
policies of one account: a request is allowed when some Allow statement
matches it and no Deny statement does. A statement matches when its Action
and Resource match and every condition holds: every operator of the block,
every key of an operator, and for a key any one of its values.

Only the condition operators rotor's roles use are known; any other raises,
so a new operator in template.yaml cannot be evaluated wrongly in silence:
* `StringEquals`, `ArnEquals`, `ArnLike`, `Bool`, each also as `...IfExists`.
  A key missing from the request makes the operator false, or true with
  `IfExists`.
* `Null`: `"true"` holds when the key is missing from the request, `"false"`
  when it is present.
ARNs compare part by part (six colon-separated parts, the last may hold
colons) with `*` and `?` wildcards in each, as `ArnEquals` and `ArnLike` do.
Condition key names are case-insensitive, their values case-sensitive.
"""

import fnmatch


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _wildcard(pattern, text, case_sensitive=True):
    if not case_sensitive:
        pattern, text = pattern.lower(), text.lower()
    return fnmatch.fnmatchcase(text, pattern)


def _arn_matches(pattern, arn):
    wanted = pattern.split(":", 5)
    parts = arn.split(":", 5)
    return len(wanted) == len(parts) == 6 and all(_wildcard(w, p) for w, p in zip(wanted, parts))


_COMPARE = {
    "StringEquals": lambda wanted, present: present == wanted,
    "ArnEquals": _arn_matches,
    "ArnLike": _arn_matches,
    "Bool": lambda wanted, present: present.lower() == wanted.lower(),
}


def _holds(operator, key, values, context):
    present = context.get(key.lower())
    if operator == "Null":
        (wanted,) = _as_list(values)
        return (present is None) == (str(wanted).lower() == "true")
    if_exists = operator.endswith("IfExists")
    compare = _COMPARE.get(operator[: -len("IfExists")] if if_exists else operator)
    if compare is None:
        raise ValueError(f"the evaluator does not know the condition operator {operator}")
    if present is None:
        return if_exists
    return any(compare(str(value), str(present)) for value in _as_list(values))


def _matches(statement, action, resource, context):
    if not any(_wildcard(a, action, case_sensitive=False) for a in _as_list(statement["Action"])):
        return False
    if not any(_wildcard(r, resource) for r in _as_list(statement["Resource"])):
        return False
    return all(
        _holds(operator, key, values, context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, values in keys.items()
    )


def allows(statements, action, resource, context):
    """Whether `statements` allow `action` on `resource` for a request whose
    condition keys are `context` (a missing key is left out, not None)."""
    context = {k.lower(): v for k, v in context.items()}
    for statement in statements:
        if "NotAction" in statement or "NotResource" in statement:
            raise ValueError(f"the evaluator does not know NotAction or NotResource: {statement}")
    matching = [s for s in statements if _matches(s, action, resource, context)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)
