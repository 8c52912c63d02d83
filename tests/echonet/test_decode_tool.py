import json
from pathlib import Path

import pytest

from echonet.tools.decode import main
from tests.echonet.test_transcripts import HISTORY, METER, POWER, _dual_hex, _single_hex


def test_decode_file_one_json_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "module.log"
    log.write_bytes(_single_hex(POWER) + _dual_hex(HISTORY) + POWER.encode() + b"\r\n"
                    + f"EVENT 29 {METER} 0\r\n".encode() + b"not a module line\r\n1082000100\r\n"
                    + b"EPANDESC\r\n  Channel:21\r\n  Channel Page:09\r\n  Pan ID:8888\r\n"
                    + b"  Addr:001C6400030C12A4\r\n  LQI:E1\r\n  PairID:00AB12CD\r\n")
    assert main([str(log), "--coefficient", "1", "--unit", "0.1"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 13
    assert out[0]["properties"][0]["value"] == -1234 and out[0]["seoj"] == "028801"
    assert out[1]["properties"][0]["value"]["day"] == 1 and out[1]["side"] == 0
    assert out[2]["tid"] == 1 and out[2]["esv"] == "72"
    assert out[3]["event"] == "29" and out[3]["side"] == 0
    assert "error" in out[4]
    assert "format 2" in out[5]["error"]
    assert out[12]["pan"]["pan_id"] == "8888"


def test_coefficient_needs_unit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--coefficient", "1"])
