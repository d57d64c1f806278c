from setuptools import find_packages, setup

setup(
    name='internvl_optim',
    version='0.1.0',
    description='Layer-wise lr decay optimizer constructor for MMEngine / '
    'MMSegmentation 1.x (InternViT-6B, ViT, BEiT, MAE)',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['internvl_optim', 'internvl_optim.*']),
    python_requires='>=3.8',
    # torch and mmcv are deliberately not pinned here: tools/setup.sh
    # installs torch 2.13.0 (CPU) first and builds mmcv 2.1.0 against it, so
    # no resolver ever pulls another torch.
    install_requires=['mmengine>=0.10.0', 'safetensors'],
    extras_require={
        'seg': ['mmsegmentation==1.2.2', 'ftfy', 'regex'],
        'tests': ['pytest'],
    },
)
