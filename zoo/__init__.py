"""The zoo: hybrid LightningModules, the registry, pretrained weights, distillation and the CLI.

```python
from hybridzoo.zoo import list_models, create_model, load_pretrained, distil
```
"""

from hybridzoo.zoo.base import HybridModule
from hybridzoo.zoo.distil import distil
from hybridzoo.zoo.hub import load_pretrained, save_pretrained
from hybridzoo.zoo.registry import create_datamodule, create_model, list_models, register

__all__ = [
    "HybridModule",
    "create_datamodule",
    "create_model",
    "distil",
    "list_models",
    "load_pretrained",
    "register",
    "save_pretrained",
]
