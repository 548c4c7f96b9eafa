"""``python -m gateway.models``: write the generated schemas into ``schemas/openapi.json``."""

from gateway.models.document import write
from gateway.openapi import SPEC_PATH

write(str(SPEC_PATH))
