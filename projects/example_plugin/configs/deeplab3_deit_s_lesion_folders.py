# The headline model (as the demo retargets it: random init, 128x128) trained on the plugin's
# LesionFolderDataset: <data_root>/{train,val}/{images,masks}/*.png.
#   python tools/train.py projects/example_plugin/configs/deeplab3_deit_s_lesion_folders.py \
#       --data-root data/my_lesions
_base_ = ['../../../configs/demo/deeplab3_deit_s_demo_isic2018.py']
data_root = 'data/my_lesions'
dataset = dict(_delete_=True, type='LesionFolderDataset', data_root=data_root)
train_dataloader = dict(dataset=dict(dataset, split='train',
                                     pipeline={{_base_.train_dataloader.dataset.pipeline}}))
val_dataloader = dict(dataset=dict(dataset, split='val',
                                   pipeline={{_base_.val_dataloader.dataset.pipeline}}))
test_dataloader = val_dataloader
