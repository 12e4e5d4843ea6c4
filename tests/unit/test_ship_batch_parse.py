"""Reading a bulk-ship CSV: the file is refused whole only when it is not such a CSV; any
other bad row is refused alone, saying why."""

import pytest

from api.errors import Problem
from api.packages import MAX_ROWS, parse

HEADER = "order_id,package_id,carrier,tracking_no"


def test_good_rows_are_read_in_order_any_case_with_or_without_a_bom() -> None:
    body = "\ufeff" + HEADER.upper() + "\r\n o-1 , o-1-1 , sf , T1 \r\n\r\no-2,o-2-1,ZTO,T2\n"
    rows = parse(body.encode())
    assert [(r.order_id, r.package_id, r.carrier, r.tracking_no, r.refusal) for r in rows] == [
        ("o-1", "o-1-1", "SF", "T1", None),
        ("o-2", "o-2-1", "ZTO", "T2", None),
    ]


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("o-1,p,UPSX,T1", "UPSX"),  # not a listed carrier
        ("o-1,p,SF", "row 1: 4 fields, not 3"),
        ("o-1,p,SF,T 1", "tracking_no"),
        ("o-1\x00,p,SF,T1", "order_id: no NUL or control characters"),
        (",p,SF,T1", "order_id: 1 to 80 characters"),
        ("o-1," + "p" * 81 + ",SF,T1", "package_id: 1 to 80 characters"),
    ],
)
def test_a_bad_row_is_refused_alone(line: str, said: str) -> None:
    rows = parse(f"{HEADER}\n{line}\no-2,o-2-1,SF,T2".encode())
    assert rows[0].refusal is not None and said in rows[0].refusal.detail
    assert rows[0].refusal.code == "VALIDATION"
    assert rows[1].refusal is None  # the next row is read as ever


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"", "a header row"),
        (b"order,package,carrier,tracking\no-1,p,SF,T1", "a header row"),
        (HEADER.encode(), "1 to 1000 rows"),
        ((HEADER + "\no-1,p,SF,T1" * 1).encode() + b"\xff", "UTF-8"),
        ((HEADER + "\no-1,p,SF,T" + "x" * 140_000).encode(), "not CSV"),  # past csv's field limit
        ((HEADER + "\no-1,p,SF,T1" * (MAX_ROWS + 1)).encode(), "1 to 1000 rows"),
        (b"x" * (256 * 1024 + 1), "at most 256 KB"),
    ],
)
def test_a_file_that_is_not_such_a_csv_is_refused_whole(body: bytes, said: str) -> None:
    with pytest.raises(Problem) as refused:
        parse(body)
    assert refused.value.status == 422 and said in refused.value.detail
