"""Building blocks shared by model families (layers whose deploy behaviour comes from ``edgestereo.ops``)."""
