# What every classification model base shares: mmpretrain's ImageClassifier, whose backbone's
# image embedding (the CLS token of a ViT, the pooled last stage of a CNN or Swin) feeds the
# dataset's head (`head` of the dataset base, completed by the model base with its input
# width), on RGB inputs with ImageNet's normalisation. A model base cls_<model>.py adds the
# backbone, whose `pretrained` is a local ImageNet file, a backbone exported from a medtrans
# run, or None (random init).
data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
model = dict(type='mmpretrain.ImageClassifier', data_preprocessor=data_preprocessor)
