"""The garbage collector: objects whose owners are all gone are deleted (background deletion)."""

from __future__ import annotations

from breakglass.sandbox.kubernetes.store import Store


class GarbageCollector:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def sync(self) -> bool:
        changed = False
        objects = self._store.all_objects()
        uids = {obj["metadata"].get("uid") for _, obj in objects}
        for kind, obj in objects:
            owners = obj["metadata"].get("ownerReferences") or []
            if owners and not any(owner.get("uid") in uids for owner in owners):
                await self._store.delete(
                    kind, obj["metadata"].get("namespace"), obj["metadata"]["name"]
                )
                changed = True
        return changed
