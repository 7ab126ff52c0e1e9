"""GRANT / REVOKE, SHOW GRANTS, SHOW ROLES, CREATE ROLE and DROP ROLE, on access/grants.py.

sqlglot models some of these statements and keeps others as generic commands, so each is rendered
back to Snowflake SQL and read here with a small tokenizer: one grammar for every form.
"""
from __future__ import annotations

import re

from django.db import transaction
from sqlglot import exp

from access import grant_objects, grants, privileges, role_graph
from access.models import Role
from catalog.identifiers import split_parts
from errors import UserError, compilation_error
from sqlengine import show
from sqlengine.results import Result, status

DONE = "Statement executed successfully."
_TOKEN = re.compile(r"""\s*(?:("(?:[^"]|"")*")|('(?:[^'\\]|''|\\.)*')|([A-Za-z_][A-Za-z0-9_$]*)|(\.)|(,)|(=)|(;)|(\S))""")
GRANT_COLUMNS = ["created_on", "privilege", "granted_on", "name", "granted_to", "grantee_name", "grant_option",
                 "granted_by"]
GRANT_TYPES = ["TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT"]
MEMBER_COLUMNS = ["created_on", "role", "granted_to", "grantee_name", "granted_by"]
MEMBER_TYPES = ["TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT"]
ROLE_COLUMNS = ["created_on", "name", "is_default", "is_current", "is_inherited", "assigned_to_users",
                "granted_to_roles", "granted_roles", "owner", "comment"]
ROLE_TYPES = ["TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT", "NUMBER", "NUMBER", "NUMBER", "TEXT", "TEXT"]


def _text(statement: exp.Expression) -> str:
    return statement.sql(dialect="snowflake").strip().rstrip(";")


def handles(statement: exp.Expression) -> bool:
    if isinstance(statement, (exp.Grant, exp.Revoke)):
        return True
    if isinstance(statement, exp.Drop):
        return (statement.args.get("kind") or "").upper() == "ROLE"
    if isinstance(statement, exp.Command):
        words = _text(statement).upper().split()
        head = words[:4]
        if head[:1] in (["GRANT"], ["REVOKE"]):
            return True
        if head[:2] in (["SHOW", "GRANTS"], ["SHOW", "ROLES"]):
            return True
        return head[:2] == ["CREATE", "ROLE"] or head[:4] == ["CREATE", "OR", "REPLACE", "ROLE"]
    return False


class Tokens:
    """Words, quoted identifiers, strings and punctuation of one statement, read left to right."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[str] = []
        for match in _TOKEN.finditer(text):
            token = next(g for g in match.groups() if g is not None)
            self.items.append(token)
        self.i = 0

    def peek(self, n: int = 0) -> str | None:
        return self.items[self.i + n] if self.i + n < len(self.items) else None

    def at(self, *words: str) -> bool:
        return all((self.peek(k) or "").upper() == w for k, w in enumerate(words))

    def accept(self, *words: str) -> bool:
        if self.at(*words):
            self.i += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise self.error(" ".join(words))

    def error(self, wanted: str) -> Exception:
        found = self.peek()
        where = f"'{found}'" if found is not None else "the end of the statement"
        return compilation_error(f"syntax error in '{self.text}': expected {wanted}, found {where}.")

    def name(self, what: str = "a name") -> str:
        """A possibly qualified identifier, as written (a.\"B\".c)."""
        parts = []
        while True:
            token = self.peek()
            if token is None or not (token.startswith('"') or re.match(r"[A-Za-z_]", token)):
                raise self.error(what)
            parts.append(token)
            self.i += 1
            if not self.accept("."):
                return ".".join(parts)

    def string(self) -> str:
        token = self.peek()
        if token is None or not token.startswith("'"):
            raise self.error("a string")
        self.i += 1
        return token[1:-1].replace("''", "'")

    def end(self) -> None:
        if self.peek() is not None:
            raise self.error("the end of the statement")


def run(executor, statement: exp.Expression) -> Result:
    tokens = Tokens(_text(statement))
    session = executor.session
    if tokens.accept("GRANT"):
        return run_grant(session, tokens)
    if tokens.accept("REVOKE"):
        return run_revoke(session, tokens)
    if tokens.accept("SHOW", "GRANTS"):
        return show_grants(session, tokens)
    if tokens.accept("SHOW", "ROLES"):
        return show_roles(session, tokens)
    if tokens.accept("CREATE"):
        or_replace = tokens.accept("OR", "REPLACE")
        tokens.expect("ROLE")
        if_not_exists = tokens.accept("IF", "NOT", "EXISTS")
        name = tokens.name("a role name")
        if tokens.accept("COMMENT"):  # accepted for compatibility; roles keep no comment here
            tokens.expect("=")
            tokens.string()
        tokens.end()
        role, created = grants.create_role(session, name, if_not_exists=if_not_exists, or_replace=or_replace)
        return status(f"Role {role.name} successfully created." if created
                      else f"{role.name} already exists, statement succeeded.")
    tokens.expect("DROP", "ROLE")
    if_exists = tokens.accept("IF", "EXISTS")
    name = tokens.name("a role name")
    tokens.end()
    dropped = grants.drop_role(session, name, if_exists=if_exists)
    return status(f"{split_parts(name)[0]} successfully dropped." if dropped
                  else "Drop statement executed successfully (role already dropped).")


def _role_kind(tokens: Tokens) -> str | None:
    if tokens.accept("DATABASE", "ROLE"):
        return grants.DATABASE_ROLE
    if tokens.accept("ROLE"):
        return grants.ROLE
    return None


def _grantee(tokens: Tokens, *, users: bool) -> tuple[str, str]:
    if tokens.accept("USER"):
        if not users:
            raise compilation_error("privileges are granted to roles, not users: GRANT … TO ROLE r, "
                                    "then GRANT ROLE r TO USER u.")
        return grants.USER, tokens.name("a user name")
    tokens.accept("ROLE")
    return grants.ROLE, tokens.name("a role name")


def _privileges(tokens: Tokens) -> list[str]:
    privileges, words = [], []
    while True:
        token = tokens.peek()
        if token is None:
            raise tokens.error("ON")
        if token.upper() == "ON" and words:
            privileges.append(" ".join(words))
            return privileges
        if token == ",":
            if not words:
                raise tokens.error("a privilege")
            privileges.append(" ".join(words))
            words = []
        elif re.match(r"[A-Za-z_]", token):
            words.append(token.upper())
        else:
            raise tokens.error("a privilege")
        tokens.i += 1


def _targets(session, tokens: Tokens) -> tuple[str, list[str]]:
    """(object type, object names as written) after ON: one object, or ALL TABLES IN SCHEMA s."""
    tokens.expect("ON")
    if tokens.accept("ALL"):
        plural = (tokens.peek() or "").upper()
        kinds = {"TABLES": "TABLE", "VIEWS": "VIEW", "MODELS": "MODEL"}
        if plural not in kinds:
            raise tokens.error("TABLES, VIEWS or MODELS")
        tokens.i += 1
        tokens.expect("IN", "SCHEMA")
        schema_text = tokens.name("a schema name")
        object_type = kinds[plural]
        schema = grant_objects.resolve_object(session, "SCHEMA", schema_text)
        database, schema_name = split_parts(schema)
        if object_type == "MODEL":
            from models_registry.models import FineTunedModel

            names = list(FineTunedModel.objects.filter(schema__database__name=database, schema__name=schema_name)
                         .values_list("name", flat=True))
        else:
            names = grant_objects.schema_tables(database, schema_name, object_type)
        return object_type, [privileges.key(database, schema_name, n) for n in names]
    object_type = (tokens.peek() or "").upper()
    if object_type not in grant_objects.OBJECT_TYPES:
        raise tokens.error(" or ".join(grant_objects.OBJECT_TYPES))
    tokens.i += 1
    return object_type, [tokens.name(f"a {object_type.lower()} name")]


def _each_authorized(session, action, privileges, object_type, names, *args) -> None:
    """All or nothing: every (privilege, object) is checked before any is stored. A refused one is
    handed to `action` outside the transaction, which records the refusal in the access history (a
    transaction rolled back would take the record with it) and raises it. So is a stage's READ and WRITE
    out of Snowflake's order (grants.out_of_order); in order, they are stored as in_storing_order says."""
    revoking = action is grants.revoke
    privileges = grants.in_storing_order(object_type, privileges, revoking=revoking)
    grantee_type, grantee, grant_option = args
    for name in names:
        try:
            stored = grant_objects.resolve_object(session, object_type, name)
        except UserError as error:
            if error.refused:  # an object the role may not see: a refusal, worded as missing
                action(session, privileges[0], object_type, name, *args)
            raise
        for privilege in privileges:
            for p in grants.privileges_for(object_type, [privilege]):
                if not grants.may_grant(session, p, object_type, stored):
                    action(session, p, object_type, name, *args)
        late = grants.out_of_order(object_type, stored, grant_objects.grantee(grantee_type, grantee),
                                   grants.privileges_for(object_type, privileges), revoking=revoking)
        if late and not (revoking and grant_option):
            action(session, late, object_type, name, *args)
    with transaction.atomic():
        for name in names:
            for privilege in privileges:
                action(session, privilege, object_type, name, *args)


def run_grant(session, tokens: Tokens) -> Result:
    role_kind = _role_kind(tokens)
    if role_kind:
        role = tokens.name("a role name")
        tokens.expect("TO")
        grantee_type, grantee = _grantee(tokens, users=True)
        tokens.end()
        grants.grant(session, "USAGE", role_kind, role, grantee_type, grantee)
        return status(DONE)
    privileges = _privileges(tokens)
    object_type, names = _targets(session, tokens)
    tokens.expect("TO")
    grantee_type, grantee = _grantee(tokens, users=False)
    grant_option = tokens.accept("WITH", "GRANT", "OPTION")
    tokens.end()
    grants.privileges_for(object_type, privileges)  # every privilege valid before any is stored
    grant_objects.grantee(grantee_type, grantee)
    _each_authorized(session, grants.grant, privileges, object_type, names, grantee_type, grantee, grant_option)
    return status(DONE)


def run_revoke(session, tokens: Tokens) -> Result:
    role_kind = _role_kind(tokens)
    if role_kind:
        role = tokens.name("a role name")
        tokens.expect("FROM")
        grantee_type, grantee = _grantee(tokens, users=True)
        tokens.end()
        grants.revoke(session, "USAGE", role_kind, role, grantee_type, grantee)
        return status(DONE)
    grant_option = tokens.accept("GRANT", "OPTION", "FOR")
    privileges = _privileges(tokens)
    object_type, names = _targets(session, tokens)
    tokens.expect("FROM")
    grantee_type, grantee = _grantee(tokens, users=False)
    tokens.accept("RESTRICT") or tokens.accept("CASCADE")
    tokens.end()
    grants.privileges_for(object_type, privileges)
    _each_authorized(session, grants.revoke, privileges, object_type, names, grantee_type, grantee, grant_option)
    return status(DONE)


def _granted_on(object_type: str) -> str:
    return object_type.replace(" ", "_")


def _grant_rows(rows) -> Result:
    return Result(GRANT_COLUMNS, [
        (g.created_on, g.privilege, _granted_on(g.object_type), g.object_name, g.grantee_type, g.grantee_name,
         "true" if g.grant_option else "false", g.granted_by) for g in rows], GRANT_TYPES)


def _member_rows(rows) -> Result:
    return Result(MEMBER_COLUMNS, [(g.created_on, g.object_name, g.grantee_type, g.grantee_name, g.granted_by)
                                   for g in rows if g.privilege == "USAGE"], MEMBER_TYPES)


def show_grants(session, tokens: Tokens) -> Result:
    """Only the form is read here: what the session may be shown is the service's rule
    (grants.shown_grants_to / shown_grants_on), the same for every entry point."""
    if tokens.peek() is None:  # SHOW GRANTS: the roles of the current user
        return _member_rows(grants.shown_grants_to(session, grants.USER))
    if tokens.accept("TO"):
        if tokens.accept("USER"):
            user = tokens.name("a user name")
            tokens.end()
            return _member_rows(grants.shown_grants_to(session, grants.USER, user))
        tokens.expect("ROLE")
        role = tokens.name("a role name")
        tokens.end()
        return _grant_rows(grants.shown_grants_to(session, grants.ROLE, role))
    if tokens.accept("OF"):
        role_kind = _role_kind(tokens)
        if role_kind is None:
            raise tokens.error("ROLE or DATABASE ROLE")
        name = tokens.name("a role name")
        tokens.end()
        return _member_rows(grants.shown_grants_on(session, role_kind, name))
    tokens.expect("ON")
    role_kind = _role_kind(tokens)
    if role_kind:
        object_type = role_kind
    else:
        object_type = (tokens.peek() or "").upper()
        if object_type not in grant_objects.OBJECT_TYPES:
            raise tokens.error(" or ".join(grant_objects.OBJECT_TYPES + ("ROLE",)))
        tokens.i += 1
    name = tokens.name()
    tokens.end()
    return _grant_rows(grants.shown_grants_on(session, object_type, name))


def show_roles(session, tokens: Tokens) -> Result:
    pattern = None
    if tokens.accept("LIKE"):
        pattern = tokens.string()
    tokens.end()
    inherited = role_graph.inherited_roles(session.role)
    rows = []
    for role in Role.objects.order_by("name").prefetch_related("users"):
        if pattern is not None and not show.like_matches(pattern, role.name):
            continue
        key = privileges.key(role.name)
        held_by = grants.grants_on(grants.ROLE, key)
        owner = next((g.grantee_name for g in held_by if g.privilege == "OWNERSHIP"), "")
        rows.append((
            role.created_on, role.name, "N", "Y" if role.name == session.role else "N",
            "Y" if role.name in inherited else "N",
            role.users.count(),
            sum(1 for g in held_by if g.privilege == "USAGE" and g.grantee_type == grants.ROLE),
            sum(1 for g in grants.grants_to(grants.ROLE, role.name) if g.object_type == grants.ROLE
                and g.privilege == "USAGE"),
            owner, "",
        ))
    return Result(ROLE_COLUMNS, rows, ROLE_TYPES)
