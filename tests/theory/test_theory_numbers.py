"""THEORY.md quotes numbers from theory/figures/results.json: each checked quote must appear, as formatted here,
in the text (issue 8 section 4 found the T1 exponent, the T3 ratios and T4's xi/(1-p) comparison out of step)."""

import json
from pathlib import Path

import pytest

THEORY = Path(__file__).resolve().parents[2] / "theory"
TEXT = (THEORY / "THEORY.md").read_text()
RESULTS = json.loads((THEORY / "figures" / "results.json").read_text())


def thousands(x: float) -> str:
    """THEORY.md's integer style: a thin space between thousands (16 745)."""
    return f"{round(x):,}".replace(",", " ")


def quotes() -> list[tuple[str, str]]:
    t1, t3, t4, v = (RESULTS[k] for k in ("T1", "T3", "T4", "V"))
    runs = t1["runs"]
    out = [
        ("T1 R(1e5), no exploration, a=5", thousands(runs["proportional a=5"]["regret_at_I"])),
        ("T1 R(1e5), no exploration, a=50", thousands(runs["proportional a=50"]["regret_at_I"])),
        ("T1 R(1e5), integer", thousands(runs["integer a=50"]["regret_at_I"])),
        ("T1 R(1e5), truncation", thousands(runs["proportional+explore a=50 truncation"]["regret_at_I"])),
        ("T1 growth exponent a=2.5", f"{runs['proportional a=2.5']['regret_growth_exponent']:.2f} without and "
                                     f"{runs['proportional+explore a=2.5']['regret_growth_exponent']:.2f} with"),
        ("T1 asymptotic exponent a=2.5", f"I^({1 + runs['proportional+explore a=2.5']['share_slope']:.2f})"),
    ]
    ratios = [t3["hoeffding_n_for_95"][g] / t3["n_for_p_order_95"][g] for g in t3["n_for_p_order_95"]]
    out.append(("T3 ratios", f"{min(ratios):.1f}–{max(ratios):.1f}×"))
    out.append(("T3 N for 95%", " / ".join(f"{t3['n_for_p_order_95'][g]:.0f}" for g in ("0.05", "0.1", "0.2"))))
    xi10 = t4["xis"].index(10)
    hopeless = [t4["hopeless_mean_visits"][p][xi10] for p in ("0.03", "0.07")]
    out.append(("T4 hopeless visits", f"{hopeless[0]:.1f} / {hopeless[1]:.1f}"))
    out.append(("T4 p=0.07 above xi/(1-p)", f"by {100 * (hopeless[1] / (10 / 0.93) - 1):.0f}%"))
    out.append(("T4 defaults", " | ".join(f"{t4['defaults_false_truncation'][f'p={p}']:.3f}" for p in (0.15, 0.2, 0.3, 0.4))))
    vt1, vt4 = v["t1"], v["t4"]
    out += [
        ("V integer R", thousands(vt1["integer (paper)"]["regret_at_I"])),
        ("V recoverable R, low p", f"{vt1['low p: proportional+explore recoverable']['regret_at_I']:.1f}"),
        ("V absorbing R, low p", thousands(vt1["low p: proportional+explore absorbing"]["regret_at_I"])),
        ("V starved, no exploration", f"{100 * vt1['proportional (no exploration)']['starved_fraction']:.1f}%"),
        ("V n = 1 share", f"{100 * v['population_n']['paper']['1']:.1f}%"),
        ("V hopeless rollouts", f"{vt4['recoverable']['0.0']['mean_rollouts']:.1f}"),
        ("V recoverable p=0.15", f"{vt4['recoverable']['0.15']['truncated_at_end']:.3f}"),
        ("V clock exponent", f"I^({vt1['proportional+explore clock=visits']['regret_growth_exponent']:.2f})"),
    ]
    return out


@pytest.mark.parametrize("what,quote", quotes(), ids=[w for w, _ in quotes()])
def test_theory_md_quotes_the_committed_results(what, quote):
    assert quote in TEXT, f"{what}: THEORY.md should quote {quote!r} (from theory/figures/results.json)"
