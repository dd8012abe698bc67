"""Vision part: receptive fields, upsampling, and lightweight CNNs from Inception to EfficientNet and ThunderNet.

One module per chapter of ``docs/vision/``; see the chapter for the derivations."""
