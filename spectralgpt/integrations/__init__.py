"""SpectralGPT from the tools people already use. Nothing here is imported by the rest of the library, and each
module needs only its own toolkit:

* `spectralgpt.integrations.encoder`: the encoder with timm's model interface and per-layer features (torch only);
* `spectralgpt.integrations.timm`: ``timm.create_model("spectralgpt_vit_base_patch8_128")`` (needs timm);
* `spectralgpt.integrations.terratorch`: TerraTorch backbones ``spectralgpt_vit_*`` (needs terratorch);
* `spectralgpt.integrations.torchgeo`: TorchGeo-style datasets over our readers (torchgeo optional).
"""
