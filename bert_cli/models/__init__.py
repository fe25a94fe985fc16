"""Models: the catalogue of released BERTs, the local cache, robust transfers and ``--model``
resolution. Pure Python (requests, filelock, huggingface_hub are imported lazily); no TensorFlow.

Public entry points:

* :func:`bert_cli.models.resolve.resolve_model` -> :class:`bert_cli.models.resolve.ModelFiles`
* :func:`bert_cli.models.resolve.complete_model_name` (shell completion for ``--model``)
* :mod:`bert_cli.models.catalogue` (``find_model``, ``find_dataset``, ``MODELS``, ``DATASETS``)
* :class:`bert_cli.models.cache.Cache`, :func:`bert_cli.models.transfer.fetch`
"""
