"""The IVG speed benchmark runs end to end on the embedded model, sized to seconds.

Why: a benchmark script that nothing runs breaks silently; this keeps its process spawning,
timing and same-batch ratios working. The figures themselves are reported, never asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_run_speed_reports_both_ratios(
    embedded_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hia_chain.bench.ivg_speed import SpeedMethod, run_speed

    monkeypatch.setenv("HIA_CHAIN_CACHE", str(embedded_path.parent))
    methods = (
        SpeedMethod("generate (HF)", "generate"),
        SpeedMethod("generate (HF), 4 rows", "generate", beam_width=2, successors=2),
        SpeedMethod("IVG W=K=2 L=2", "loop", token=True, beam_width=2, successors=2, chunk=2),
    )
    rows = run_speed(["Say hi."], max_new_tokens=4, repeats=1, methods=methods)
    by_name = {r["method"]: r for r in rows}
    assert by_name["generate (HF)"]["ratio"] == pytest.approx(1.0)
    ivg = by_name["IVG W=K=2 L=2"]
    assert ivg["ideal_ratio"] == 8 and ivg["same_batch_ideal"] == 2
    assert ivg["ratio"] > 0 and ivg["same_batch_ratio"] > 0 and ivg["peak_mb"] > 100
