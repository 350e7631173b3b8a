"""The label catalogue as `labels list` and `model list` show it.

Both command modules read it; it lives apart from them so that neither imports the other's commands. It takes
the stage's registry (registry_commands.registry_for builds it) rather than the stack.
"""

from __future__ import annotations

from pathlib import Path


def store_and_champion(registry):
    """(the catalogue store, the champion version or None, the champion's labels)."""
    from categorizer.registry.catalogue import CatalogueStore

    champion = registry.champion_version()
    labels: tuple[str, ...] = ()
    if champion:
        import tempfile

        labels = registry.labels_of(registry.require(champion), Path(tempfile.gettempdir()) / "categorizer-cli")
    return CatalogueStore(registry.bucket), champion, labels


def catalogue_view(registry) -> dict:
    """The catalogue as `labels list` and `model list` show it (the champion's labels before any change)."""
    from categorizer.registry import catalogue as cat

    store, champion, labels = store_and_champion(registry)
    stored = store.read()
    current = stored or cat.seed(labels, champion=champion, actor="champion")
    return {"revision": stored.revision if stored else 0, "champion": champion,
            "notices": cat.mismatch_notes(current, champion=champion, champion_labels=labels),
            "labels": [{"name": e.name, "status": e.status.value, "examples": len(e.examples),
                        "replaced_by": e.replaced_by, "pending": e.pending.describe(e.name) if e.pending else None,
                        "description": e.description} for e in current.labels],
            "history": [h.to_json() for h in current.history]}


def print_catalogue(view: dict, *, history: int = 0) -> None:
    counts: dict[str, int] = {}
    for label in view["labels"]:
        counts[label["status"]] = counts.get(label["status"], 0) + 1
    print(f"labels (catalogue revision {view['revision']}): "
          + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for label in view["labels"]:
        if label["status"] == "active" and not label["pending"]:
            continue
        extra = label["pending"] or (f"replaced by {label['replaced_by']}" if label["replaced_by"] else "")
        print(f"  {label['name']:<32} {label['status']:<9} {label['examples']:>4} example(s)  {extra}")
    for note in view["notices"]:
        print(f"  note: {note}")
    for change in view["history"][-history:] if history else ():
        print(f"  {change['at'][:19]}  {change['action']:<9} {change['label'] or '-'}"
              + (f" -> {change['to']}" if change["to"] else "") + f"  by {change['actor']}"
              + (f": {change['reason']}" if change["reason"] else ""))
