# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""MERIT: multimodal ECG representation learning (masked ECG modelling + ECG-report contrastive alignment).

Importing this package registers the MERIT classes with the `transformers` Auto classes, so that an installed
package loads checkpoints without `trust_remote_code`, and marks them for `auto_map` so that `save_pretrained`
writes checkpoints that load with `trust_remote_code=True` where the package is not installed.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoProcessor,
)

from .configuration_merit import CANONICAL_LEADS, MeritConfig, MeritECGConfig
from .configuration_merit_report import MeritReportGenerationConfig
from .feature_extraction_merit import MeritFeatureExtractor
from .limits_merit import MeritLimits
from .modeling_merit import (
    MeritECGModel,
    MeritForECGClassification,
    MeritForPreTraining,
    MeritModel,
    MeritPreTrainedModel,
)
from .modeling_merit_report import MeritForReportGeneration
from .pipeline_merit import (
    ECGClassificationPipeline,
    ECGFeatureExtractionPipeline,
    ECGReportGenerationPipeline,
    ZeroShotECGClassificationPipeline,
)
from .processing_merit import MeritProcessor


def _register_auto_classes() -> None:
    AutoConfig.register(MeritECGConfig.model_type, MeritECGConfig, exist_ok=True)
    AutoConfig.register(MeritConfig.model_type, MeritConfig, exist_ok=True)
    AutoModel.register(MeritECGConfig, MeritECGModel, exist_ok=True)
    AutoModel.register(MeritConfig, MeritModel, exist_ok=True)
    AutoModelForPreTraining.register(MeritConfig, MeritForPreTraining, exist_ok=True)
    AutoFeatureExtractor.register(MeritConfig, MeritFeatureExtractor, exist_ok=True)
    AutoProcessor.register(MeritConfig, MeritProcessor, exist_ok=True)
    AutoConfig.register(MeritReportGenerationConfig.model_type, MeritReportGenerationConfig, exist_ok=True)
    AutoModel.register(MeritReportGenerationConfig, MeritForReportGeneration, exist_ok=True)
    AutoFeatureExtractor.register(MeritReportGenerationConfig, MeritFeatureExtractor, exist_ok=True)
    AutoProcessor.register(MeritReportGenerationConfig, MeritProcessor, exist_ok=True)

    # `auto_map` entries written by save_pretrained, for trust_remote_code loading from the Hub.
    MeritECGConfig.register_for_auto_class("AutoConfig")
    MeritConfig.register_for_auto_class("AutoConfig")
    MeritECGModel.register_for_auto_class("AutoModel")
    MeritModel.register_for_auto_class("AutoModel")
    MeritForPreTraining.register_for_auto_class("AutoModelForPreTraining")
    MeritFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    MeritProcessor.register_for_auto_class("AutoProcessor")
    MeritReportGenerationConfig.register_for_auto_class("AutoConfig")
    MeritForReportGeneration.register_for_auto_class("AutoModel")


_register_auto_classes()

__all__ = [
    "CANONICAL_LEADS",
    "MeritConfig",
    "MeritECGConfig",
    "MeritFeatureExtractor",
    "MeritLimits",
    "MeritProcessor",
    "MeritPreTrainedModel",
    "MeritECGModel",
    "MeritModel",
    "MeritForPreTraining",
    "MeritForECGClassification",
    "MeritReportGenerationConfig",
    "MeritForReportGeneration",
    "ZeroShotECGClassificationPipeline",
    "ECGClassificationPipeline",
    "ECGFeatureExtractionPipeline",
    "ECGReportGenerationPipeline",
]
