"""Knowledge bases: answers retrieved by sentence embedding, versioned like skills.

``entries`` (the source files), ``index`` (exact or HNSW search), ``base`` (a built base's
artifacts and retrieval), ``skill`` (the retrieval skill kind), ``build`` (``orchestrator kb
build``), ``evaluate`` (``orchestrator kb eval``). Heavy parts (the encoder, faiss) load late.
"""
