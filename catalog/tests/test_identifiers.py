import pytest

from catalog.identifiers import QualifiedName, qualify, quote, quote_always, split_parts
from errors import UserError


def test_unquoted_parts_are_upper_cased_and_quoted_parts_keep_their_case():
    assert split_parts('mydb.MySchema."My Model"') == ["MYDB", "MYSCHEMA", "My Model"]


def test_a_doubled_quote_inside_a_quoted_name_is_one_quote():
    assert split_parts('"say ""hi"""') == ['say "hi"']


def test_one_part_names_resolve_against_the_session():
    assert qualify("my_model", "DB", "SCH") == QualifiedName("DB", "SCH", "MY_MODEL")
    assert qualify("other.my_model", "DB", "SCH") == QualifiedName("DB", "OTHER", "MY_MODEL")


def test_a_qualified_name_prints_the_way_snowflake_shows_it():
    assert str(QualifiedName("DB", "PUBLIC", "My Model")) == 'DB.PUBLIC."My Model"'


def test_quote_leaves_a_plain_name_bare_and_quote_always_quotes_every_part():
    assert [quote("PUBLIC"), quote("My Model")] == ["PUBLIC", '"My Model"']
    assert quote_always("DB", "PUBLIC", 'say "hi"') == '"DB"."PUBLIC"."say ""hi"""'


def test_a_name_without_a_current_database_says_how_to_fix_it():
    with pytest.raises(UserError, match="no current database. Run USE DATABASE"):
        qualify("my_model", None, None)


@pytest.mark.parametrize("bad", ["", "1abc", "a-b", "a.", ".a", '""', "a b"])
def test_invalid_names_are_refused(bad):
    with pytest.raises(UserError, match="Invalid identifier"):
        split_parts(bad)
