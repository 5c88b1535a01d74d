"""Beyond sequences: attention over the channels and the positions of a feature map.

* :mod:`~solutions.vision.channel` — channel attention: the Squeeze-and-Excitation block (Hu et al. 2018)
  and Efficient Channel Attention with its adaptive kernel size k = ψ(C) (Wang et al. 2020);
* :mod:`~solutions.vision.cbam` — CBAM's channel module (average and max pooling through one shared MLP),
  its spatial module (a 7×7 convolution over the [average; max] channel pools) and their composition
  (Woo et al. 2018);
* :mod:`~solutions.vision.spatial_transformer` — the spatial transformer: a localisation net predicts an
  affine θ, ``F.affine_grid`` and ``F.grid_sample`` resample the input; initialised to the identity
  (Jaderberg et al. 2015);
* :mod:`~solutions.vision.convnet` — the small convnet of the chapter, with any of the modules after each
  convolution, and the chapter's STN classifier.

These mechanisms *gate* (a sigmoid per channel or per position, each weight in (0, 1) on its own) or
*resample*; none normalises scores over a set with a softmax, so none calls the core's ``masked_softmax``.
Every module takes channels-first feature maps (B, C, H, W), follows the device and dtype of its input,
and returns its weights (gates, maps, θ) next to its output; nothing is stashed on the module.
"""
from .cbam import CBAM, ChannelGate, SpatialGate, cbam_parameters
from .channel import EfficientChannelAttention, SqueezeExcitation, eca_kernel_size, eca_parameters, se_parameters
from .convnet import ConvNet, ConvNetConfig, STNClassifier
from .spatial_transformer import SpatialTransformer, affine_resample, identity_theta

__all__ = [
    "SqueezeExcitation", "EfficientChannelAttention", "eca_kernel_size", "se_parameters", "eca_parameters",
    "ChannelGate", "SpatialGate", "CBAM", "cbam_parameters",
    "SpatialTransformer", "affine_resample", "identity_theta",
    "ConvNet", "ConvNetConfig", "STNClassifier",
]
