"""Models-from-code entry point of the pyfunc model: MLflow runs this file to build the model, so a registered
model holds no pickled Python object (nothing to unpickle, nothing arbitrary to execute). Not imported by
the package; `log_pyfunc` passes its path."""

from mlflow.models import set_model

from spectralgpt.tracking.pyfunc import SpectralGPTPyfunc

set_model(SpectralGPTPyfunc())
