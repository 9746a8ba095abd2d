# Copyright (c) mmris contributors. All rights reserved.
"""mmris: parameter-efficient referring image segmentation for OpenMMLab.

Importing the package registers every component into MMSegmentation's
registries, so ``custom_imports=dict(imports=['mmris'])`` in any MMSeg config
makes them available.
"""
from . import compat  # noqa: F401  (must come first)
from . import models  # noqa: F401
from . import apis, datasets, engine, evaluation, visualization
from .version import __version__

__all__ = ['__version__']
