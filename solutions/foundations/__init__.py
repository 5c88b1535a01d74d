"""Part I, foundations: attention pooling as Nadaraya–Watson kernel regression (:mod:`~solutions.foundations.nadaraya_watson`)."""
