"""fastcnn.compat -- other APIs on top of fastcnn: the book's network3.py
(network3.py), and the module paths of earlier fastcnn versions (legacy.py)."""
