from setuptools import find_packages, setup

setup(
    name='internvl_optim',
    version='0.1.0',
    description='Layer-wise lr decay and weight-decay exclusion for '
    'fine-tuning large vision backbones and VLMs (MMEngine constructor and '
    'plain PyTorch)',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['internvl_optim', 'internvl_optim.*']),
    python_requires='>=3.8',
    # torch and mmcv are never named here: pip keeps the torch (CUDA or CPU)
    # and mmcv you have, whatever extras you ask for; tools/setup.sh installs
    # a fresh machine. (timm is not an extra: its torchvision dependency
    # would pull a torch of its own.)
    install_requires=['numpy'],
    extras_require={
        'mmengine': ['mmengine>=0.10.0,<0.11', 'safetensors'],
        'seg': ['mmengine>=0.10.0,<0.11', 'safetensors',
                'mmsegmentation>=1.2.2,<1.3', 'ftfy', 'regex'],
        'det': ['mmengine>=0.10.0,<0.11', 'mmdet>=3.3.0,<3.4'],
        'multimodal': ['transformers>=5.0', 'accelerate', 'safetensors'],
        'deepspeed': ['deepspeed==0.15.4'],
        'docs': ['sphinx>=9.0', 'myst-parser>=5.0'],
        'tests': ['pytest', 'safetensors'],
    },
)
