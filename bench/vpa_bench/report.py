"""The stdout table and the PNG chart, both drawn from the results dict alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else _f(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _pct(part: float | None) -> str:
    return "-" if part is None else f"{part * 100:.0f}%"


def render(results: dict[str, Any], markdown: bool = False) -> str:
    m = results["machine"]
    run = results["run"]
    out = [
        f"VPA benchmark ({run['mode']}) — {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}, "
        f"{m['python']}; load average {m.get('load_average_at_start')} → {run.get('load_average_at_end')}; "
        f"{run['duration_s']:.0f} s",
        "",
    ]
    providers = results["providers"]
    kinds = ", ".join(
        f"{n} ({p['kind']}{'' if p.get('status') == 'ran' else ', ' + str(p.get('status'))})"
        for n, p in providers.items()
    )
    out.append(f"Providers: {kinds or 'none'}")
    out.append("")

    out.append(
        "Ingest end to end (hashing embedder, 384-d; synthetic ~1.5 kB documents): where the wall time went"
    )
    rows = []
    for prov, sizes in results["ingest"].items():
        for size, r in sizes.items():
            share = r.get("split_share", {})
            re = results["reingest"].get(prov, {}).get(size, {})
            rows.append(
                [
                    prov,
                    int(size),
                    r.get("chunks"),
                    r.get("docs_per_s"),
                    r.get("chunks_per_s"),
                    _pct(share.get("embedder")),
                    _pct(share.get("store")),
                    _pct(share.get("store_vpa_base")),
                    _pct(share.get("vpa_exclusive")),
                    re.get("docs_per_s"),
                    r.get("rss_mb_per_1000_docs"),
                ]
            )
    st = results.get("sentence_transformers_ingest") or {}
    if st.get("documents"):
        share = st.get("split_share", {})
        rows.append(
            [
                "memory+MiniLM",
                st["documents"],
                st.get("chunks"),
                st.get("docs_per_s"),
                st.get("chunks_per_s"),
                _pct(share.get("embedder")),
                _pct(share.get("store")),
                _pct(share.get("store_vpa_base")),
                _pct(share.get("vpa_exclusive")),
                st.get("reingest", {}).get("docs_per_s"),
                None,
            ]
        )
    out += _table(
        [
            "provider",
            "docs",
            "chunks",
            "docs/s",
            "chunks/s",
            "embed",
            "store",
            "(base)",
            "VPA only",
            "re-ingest docs/s",
            "RSS MB/1k docs",
        ],
        rows,
    )
    out.append("")

    out.append(
        "Search, top-10 (ms): search_knowledge cold (query embedded, store queried) and cached; "
        "store.query alone"
    )
    rows = []
    for prov, sizes in results["search"].items():
        for size, r in sizes.items():
            c, k, s = r.get("cold", {}), r.get("cached", {}), r.get("store_query", {})
            tp = results["throughput"].get(prov, {}).get(size, {})
            rows.append(
                [
                    prov,
                    int(size),
                    r.get("load", {}).get("records_per_s"),
                    f"{_f(c.get('p50_ms'), 2)}/{_f(c.get('p95_ms'), 2)}/{_f(c.get('p99_ms'), 2)}",
                    f"{_f(k.get('p50_ms'), 3)}/{_f(k.get('p95_ms'), 3)}/{_f(k.get('p99_ms'), 3)}",
                    _f(s.get("p50_ms"), 2),
                    _f(r.get("store_query_blas_1_thread", {}).get("p50_ms"), 2),
                    *[tp.get(lvl, {}).get("qps") for lvl in sorted(tp, key=int)],
                ]
            )
    levels = sorted({lvl for p in results["throughput"].values() for s in p.values() for lvl in s}, key=int)
    out += _table(
        [
            "provider",
            "chunks",
            "load rec/s",
            "cold p50/p95/p99",
            "cached p50/p95/p99",
            "store p50",
            "(1 BLAS thr)",
            *[f"qps@{lvl}" for lvl in levels],
        ],
        rows,
    )
    out.append("")

    out.append("Overhead: VPA time ÷ baseline time, same run (1.00 = none; target < 1.05)")
    rows = []
    for prov, r in results["overhead_vs_bare"].items():
        rows.append(
            [
                prov,
                r.get("library", "bare"),
                r.get("upsert_ratio"),
                r.get("query_ratio_p50"),
                r.get("query_ratio_p50_vs_bare_in_thread"),
                r.get("ingest_pipeline_ratio"),
                r.get("search_pipeline_ratio_p50"),
                r.get("search_pipeline_ratio_p50_vs_bare_in_thread"),
            ]
        )
    for prov, r in results["overhead_vs_langchain"].items():
        rows.append(
            [
                prov,
                r.get("library", "langchain"),
                None,
                None,
                None,
                r.get("ingest_pipeline_ratio"),
                r.get("search_pipeline_ratio_p50"),
                None,
            ]
        )
    out += _table(
        [
            "provider",
            "baseline",
            "store upsert",
            "store query p50",
            "(vs in thread)",
            "ingest pipeline",
            "search p50",
            "(vs in thread)",
        ],
        [[c if not isinstance(c, float) else f"{c:.2f}" for c in r] for r in rows],
    )
    out.append("")

    q = results["quality"]
    if q.get("vpa"):
        v = q["vpa"]
        ref = q.get("exact_numpy_same_vectors", {})
        versus = (
            f"published {q['published_ndcg@10']:.4f} on all 300 queries: a subset is not comparable"
            if q.get("subset")
            else f"published {q['published_ndcg@10']:.4f}, Δ {q['delta_vs_published']:+.4f}"
        )
        out.append(
            f"Quality, {q['dataset']} ({v['queries']} queries{', subset' if q.get('subset') else ''}), "
            f"{q['embedder']}, {q['store']} store: nDCG@10 {v['ndcg@10']:.4f} ({versus}), "
            f"recall@10 {v['recall@10']:.4f}, recall@100 {v['recall@100']:.4f}"
            + (f"; exact numpy over the same vectors: nDCG@10 {ref['ndcg@10']:.4f}" if ref else "")
        )
        chunked = q.get("chunked", {}).get("vpa")
        if chunked:
            out.append(
                "  with default chunking (1000/200, best chunk per document): "
                f"nDCG@10 {chunked['ndcg@10']:.4f}, "
                f"recall@10 {chunked['recall@10']:.4f}, recall@100 {chunked['recall@100']:.4f}"
            )
    else:
        out.append(f"Quality: skipped — {q.get('skipped', 'not run')}")
    out.append("")

    out.append("Targets (issue 7)")
    out += _table(
        ["target", "measured", "limit", "met"],
        [
            [
                t["target"],
                _f(t.get("value"), 3),
                _f(t.get("limit"), 3),
                {True: "yes", False: "NO", None: "-"}[t.get("met")],
            ]
            for t in results["targets"]
        ],
    )
    if results["skipped"]:
        out.append("")
        out.append("Skipped")
        for s in results["skipped"]:
            out.append(f"- {s.get('provider', '')}: {s['what']} — {s['why']}")
    return "\n".join(out)


def chart(results: dict[str, Any], path: Path) -> str | None:
    """Latency against collection size per provider, and ingest throughput per provider."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"matplotlib is not installed ({exc})"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))

    def label(prov: str) -> str:
        kind = results["providers"].get(prov, {}).get("kind")
        return f"{prov} (stand-in)" if kind == "stand-in" else prov

    for prov, sizes in results["search"].items():
        xs = sorted(int(s) for s in sizes if sizes[s].get("cold", {}).get("n"))
        if not xs:
            continue
        ax1.plot(xs, [sizes[str(x)]["cold"]["p50_ms"] for x in xs], marker="o", label=f"{label(prov)} p50")
        ax1.plot(
            xs,
            [sizes[str(x)]["cold"]["p95_ms"] for x in xs],
            marker="x",
            linestyle="--",
            alpha=0.5,
            color=ax1.lines[-1].get_color(),
            label=f"{label(prov)} p95",
        )
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("collection size (chunks)")
    ax1.set_ylabel("search_knowledge latency, uncached (ms)")
    ax1.set_title("Search latency vs collection size (top-10)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7, ncol=2)
    providers = list(results["ingest"])
    sizes = sorted({int(s) for p in results["ingest"].values() for s in p})
    width = 0.8 / max(len(sizes), 1)
    for i, size in enumerate(sizes):
        vals = [results["ingest"][p].get(str(size), {}).get("chunks_per_s", 0) for p in providers]
        ax2.bar([j + i * width for j in range(len(providers))], vals, width, label=f"{size:,} documents")
    ax2.set_xticks(
        [j + width * (len(sizes) - 1) / 2 for j in range(len(providers))],
        [label(p).replace(" (", "\n(") for p in providers],
    )
    ax2.set_ylabel("chunks / s (end to end, hashing embedder)")
    ax2.set_title("Ingest throughput per provider")
    ax2.grid(True, axis="y", alpha=0.3)
    ax2.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(
        f"VPA bench ({results['run']['mode']}) — {m['cpu']}, {m['cores']} cores, {m['python']}", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
