"""fastcnn.reference -- every op in plain NumPy: the oracle, written to be read.
(Being written; see the README's "Ops" section for the contract.)"""
