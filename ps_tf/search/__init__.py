"""Search over a user's own images and videos: "find this person in these files".

Modules, in data-flow order:
    media.py          gallery files (images, videos sampled at an fps), the one image decoder
    index.py          the gallery index file: detections and embeddings per file, reused across
                      runs; exact and FAISS HNSW top-k
    searcher.py       a model's detect/embed signatures, index updates, the query embedding
    ranking.py        the top-k hits, and why there are none
    contact_sheet.py  the query and its hits as one picture
    pipeline.py       one search end to end (`run`), what `search.py` calls

Search uses models (`ps_tf.models.loading`, `ps_tf.serving`), never training code.
"""
