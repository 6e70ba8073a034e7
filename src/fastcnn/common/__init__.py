"""fastcnn.common -- the rules every room of fastcnn follows: argument checks
(checks), the limits the native core enforces (limits) and the output-size
formula of a window sweep (geometry). Imports nothing of fastcnn but _core."""
