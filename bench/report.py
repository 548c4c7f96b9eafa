"""The table ``python -m bench`` prints, and the small formatting helpers its rows use."""

from __future__ import annotations

from typing import Any

COLUMNS = ("scenario", "c", "req/s", "p50 ms", "p99 ms", "result", "target", "cpu srv/load %")
# counts of things that went wrong (or, for ``extra``, of filler requests): summed over a figure's runs, never
# taken as a median, so one failing run shows
COUNTERS = ("bad", "other", "conflict", "extra", "untimed")
ERRORS = ("bad", "other", "conflict", "err_connect", "err_read", "err_write", "err_timeout")


def is_counter(key: str) -> bool:
    return key in COUNTERS or key.startswith("err_")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def pct(a: float, b: float) -> str:
    return f"{100 * a / b:.0f}%" if b else "n/a"


def count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def brief(result: dict[str, Any]) -> str:
    if "rps" in result:
        extra = "".join(f" {k}={result[k]}" for k in (*ERRORS, "extra") if result.get(k))
        if "webhook_drain_s" in result:
            extra += f" webhooks drained +{result['webhook_drain_s']:.1f}s"
        return (
            f"{result['rps']:.0f} req/s p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms "
            f"cpu {result['server_cpu_pct']:.0f}/{result['load_cpu_pct']:.0f}%{extra}"
        )
    return ", ".join(f"{k}={v}" for k, v in result.items())


def row(scenario: str, c: int, m: dict[str, Any], result: str = "", target: str = "") -> dict[str, Any]:
    errors = sum(int(m.get(k, 0)) for k in ERRORS)
    if errors:
        runs = m.get("runs", 1)
        result = f"{result}; {errors} bad answers/errors in {runs} run{'s' if runs != 1 else ''}".lstrip("; ")
    return {
        "scenario": scenario,
        "c": c,
        "rps": round(m["rps"], 1),
        "p50_ms": round(m["p50_ms"], 3),
        "p99_ms": round(m["p99_ms"], 3),
        "result": result,
        "target": target,
        "server_cpu_pct": round(m["server_cpu_pct"]),
        "load_cpu_pct": round(m["load_cpu_pct"]),
    }


def text_row(scenario: str, result: str, target: str = "", m: dict[str, Any] | None = None) -> dict[str, Any]:
    """A row of text only; with ``m`` (a run's figures) it shows the CPU use of both sides too."""
    return {
        "scenario": scenario,
        "c": None,
        "rps": None,
        "p50_ms": None,
        "p99_ms": None,
        "result": result,
        "target": target,
        "server_cpu_pct": round(m["server_cpu_pct"]) if m else None,
        "load_cpu_pct": round(m["load_cpu_pct"]) if m else None,
    }


def _cells(r: dict[str, Any]) -> list[str]:
    def num(v: float | None, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    cpu = "" if r["server_cpu_pct"] is None else f"{r['server_cpu_pct']}/{r['load_cpu_pct']}"
    return [
        r["scenario"],
        "" if r["c"] is None else str(r["c"]),
        num(r["rps"], ".0f"),
        num(r["p50_ms"], ".2f"),
        num(r["p99_ms"], ".2f"),
        r["result"],
        r["target"],
        cpu,
    ]


def table(machine: dict[str, Any], opts: Any, rows: list[dict[str, Any]], notes: list[str]) -> str:
    cells = [list(COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    right = {1, 2, 3, 4, 7}

    def line(c: list[str]) -> str:
        padded = (v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths, strict=True)))
        return "| " + " | ".join(padded) + " |"

    out = [
        f"machine: nproc={machine['nproc']}, cpu={machine['cpu']}, python {machine['python']}, "
        f"kernel {machine['kernel']}, {machine['wrk']}, a2a-sdk {machine['a2a-sdk']}, aiohttp {machine['aiohttp']}, "
        f"uvicorn {machine['uvicorn']}",
        f"servers on core 0, load on core 1; each figure the median of {opts.rounds} runs in rotation; "
        f"wrk runs of {opts.duration}s" + (" (quick)" if opts.quick else ""),
        line(cells[0]),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *(line(c) for c in cells[1:]),
    ]
    out += [f"note: {n}" for n in notes]
    return "\n".join(out)
