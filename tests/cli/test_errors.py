"""Every expected CLI failure: one or two lines saying what happened and what to do, non-zero, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from categorizer_cli.main import main


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def _one_or_two_lines(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, err
    assert "Traceback" not in err


def test_missing_file(capsys, tiny_bundle, tmp_path):
    code, err = _run(capsys, "classify-file", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv"),
                     "--model", str(tiny_bundle))
    assert code == 2 and "no such file" in err and "nope.csv" in err
    _one_or_two_lines(err)


def test_no_model(capsys, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("text\nhello\n")
    code, err = _run(capsys, "classify-file", str(source), "--out", str(tmp_path / "o.csv"),
                     "--model", str(tmp_path / "no-model"))
    assert code == 2 and "no usable model" in err and "categorizer model build" in err
    _one_or_two_lines(err)


def test_missing_text_column(capsys, tiny_bundle, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("title,body\nhello,world\n")
    code, err = _run(capsys, "classify-file", str(source), "--out", str(tmp_path / "o.csv"),
                     "--model", str(tiny_bundle), "--text-column", "nope")
    assert code == 1 and "'nope' not found" in err and "'title', 'body'" in err
    _one_or_two_lines(err)


def test_text_columns_comma_and_space_mean_the_same(capsys, tiny_bundle, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("title,body\nCard,my card has not arrived\n")
    summaries = []
    for columns in (["title,body"], ["title", "body"], ["title body"]):
        assert main(["classify-file", str(source), "--out", str(tmp_path / "o.csv"), "--model", str(tiny_bundle),
                     "--text-column", *columns]) == 0
        summaries.append(json.loads(capsys.readouterr().out)["text_columns"])
    assert summaries == [["title", "body"]] * 3


def test_bad_label_column(capsys, tiny_bundle, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,category\nmy card,card_arrival\n")
    code, err = _run(capsys, "model", "eval", "--model", str(tiny_bundle), "--data", str(data),
                     "--label-column", "intent")
    assert code == 2 and "no label column 'intent'" in err and "--label-column" in err
    _one_or_two_lines(err)


def test_stack_not_running_without_outputs(capsys, tmp_path, tiny_bundle):
    source = tmp_path / "in.csv"
    source.write_text("text\nhello\n")
    code, err = _run(capsys, "drop", str(source), "--outputs", str(tmp_path / "outputs.json"))
    assert code == 2 and "make up" in err
    _one_or_two_lines(err)


def _outputs(tmp_path: Path, **extra: str) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"Stack": {"Region": "us-east-1", "IngestBucket": "in", "ResultsBucket": "out",
                                          **extra}}))
    return path


def test_stack_not_running_behind_its_outputs(capsys, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("text\nhello\n")
    outputs = _outputs(tmp_path, AwsEndpointUrl="http://127.0.0.1:9")  # nothing listens on the discard port
    code, err = _run(capsys, "drop", str(source), "--outputs", str(outputs))
    assert code == 2 and "not reachable" in err and "make up" in err
    _one_or_two_lines(err)


def test_token_refused(capsys, tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        cognito = boto3.client("cognito-idp", region_name="us-east-1")
        pool = cognito.create_user_pool(PoolName="p")["UserPool"]["Id"]
        client = cognito.create_user_pool_client(UserPoolId=pool, ClientName="c",
                                                 ExplicitAuthFlows=["USER_PASSWORD_AUTH"])["UserPoolClient"]
        cognito.admin_create_user(UserPoolId=pool, Username="demo", TemporaryPassword="Temp-pass-1!")
        cognito.admin_set_user_password(UserPoolId=pool, Username="demo", Password="Right-pass-1!", Permanent=True)
        outputs = _outputs(tmp_path, UserClientId=client["ClientId"], DemoUsername="demo",
                           DemoPassword="Wrong-pass-1!", ApiUrl="http://127.0.0.1:9")
        code, err = _run(capsys, "classify", "my card", "--outputs", str(outputs))
    assert code == 2 and "refused the credentials" in err and "CATEGORIZER_PASSWORD" in err
    _one_or_two_lines(err)


def test_debug_shows_the_traceback(capsys, tmp_path, tiny_bundle):
    code, err = _run(capsys, "--debug", "classify-file", str(tmp_path / "nope.csv"), "--out",
                     str(tmp_path / "o.csv"), "--model", str(tiny_bundle))
    assert code == 2 and "Traceback" in err and "no such file" in err


@pytest.mark.parametrize("name", ["a.xlsm", "a.xls"])
def test_refused_workbook_names(capsys, tmp_path, tiny_bundle, name):
    source = tmp_path / name
    source.write_bytes(b"PK\x03\x04")
    code, err = _run(capsys, "classify-file", str(source), "--out", str(tmp_path / "o.csv"),
                     "--model", str(tiny_bundle))
    assert code == 2 and ".xlsx" in err
    _one_or_two_lines(err)
