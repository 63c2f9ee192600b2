"""Caches: up-to-date signatures, tool identities, stage-1 keys and store, the layered entry store and bundles, ccache, signing."""
