"""python -m fastcnn: print build_info() (the self-check comes with the ops)."""
import json

import fastcnn

print(json.dumps(fastcnn.build_info(), indent=2))
