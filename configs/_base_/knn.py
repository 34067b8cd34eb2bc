# k-NN evaluation of frozen features (the study's Table 3; docs/knn.md): the test run scores each
# test image by the k nearest train images (cosine similarity of the embeddings: CLS token for
# ViTs, pooled last stage for CNNs), votes weighted by exp(similarity / T), and reports the
# dataset's own metric. k = 200 and T = 0.07 as DINO (the study's code hard-coded T = 0.1).
# The memory (train) set is the config's train split read with its test pipeline.
knn_test_cfg = dict(type='KNNTestLoop', k=200, temperature=0.07)
