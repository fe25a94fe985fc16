"""Models: the catalogue of released BERTs, the local cache, robust transfers, installing models
and ``--model`` resolution. Pure Python (requests, filelock, huggingface_hub are imported lazily); no TensorFlow.

Public entry points:

* :func:`bert_cli.models.resolve.resolve_model` -> :class:`bert_cli.models.resolve.ModelFiles`
* :func:`bert_cli.models.resolve.complete_model_name` (shell completion for ``--model``)
* :mod:`bert_cli.models.catalogue` (``find_model``, ``find_dataset``, ``MODELS``, ``DATASETS``)
* :class:`bert_cli.models.cache.Cache`, :func:`bert_cli.models.transfer.fetch`
* :func:`bert_cli.models.install.download_model`, ``install_local``, ``install_url`` (used by
  ``bert download`` and ``--model NAME --download``)
* :func:`bert_cli.models.folder.find_checkpoint`, ``model_casing`` (what a model folder holds)
* :func:`bert_cli.models.policy.resolve_model_files` (the one model-files policy of the commands)

Dependencies point one way: ``bert_cli.ops`` imports ``bert_cli.models``, never the reverse.
"""
