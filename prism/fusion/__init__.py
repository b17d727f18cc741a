"""The fusion model and everything that serves it.

``model`` (the whole model, one file) and ``train`` (its training loop and checkpoint files);
``features`` (what the model reads of an item), ``recommender`` (the model as a ranker),
``checkpoints`` (which checkpoint is in service), ``vectors`` (fused item vectors in the
store), ``pipeline`` (``prism train``) and ``metadata`` (hashed item metadata).
"""
