"""The pipeline stages, one module each: the work, its content keys, its outputs and its lineage, called alike
by the Prefect flows (flows/) and the `spectralgpt` CLI.

ingest      validate raw samples; manifest with per-sample content digests and splits
preprocess  uint16 shard corpora (pretrain whole, task corpora one per split), keyed by those digests
pretrain    progressive MAE stages in content-keyed run folders
finetune    one task on the pretrained encoder, keyed by training data, pretrained weights and settings
evaluate    a fine-tuned model on its held-out split; data version = that split's content digest
runs        run folders and the reuse rule they share
"""
