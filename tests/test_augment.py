import torch

from fer_core.data.augment import AugmentConfig, augment_batch

OFF = AugmentConfig(rotation_deg=0, scale=0, shift=0, flip=0, brightness=0, contrast=0, erase_p=0)


def test_identity_when_everything_is_off():
    x = torch.randn(5, 1, 48, 48)
    torch.testing.assert_close(augment_batch(x, OFF, torch.Generator().manual_seed(0)), x, atol=1e-4, rtol=0)


def test_flip_only_mirrors_each_image():
    x = torch.randn(4, 1, 48, 48)
    flip = AugmentConfig(rotation_deg=0, scale=0, shift=0, flip=1.0, brightness=0, contrast=0, erase_p=0)
    torch.testing.assert_close(augment_batch(x, flip, torch.Generator()), torch.flip(x, dims=[3]), atol=1e-4, rtol=0)


def test_deterministic_given_generator_and_shape_preserved():
    x = torch.randn(8, 1, 48, 48)
    a = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3))
    b = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3))
    c = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, x)


def test_erasing_changes_a_rectangle():
    x = torch.zeros(16, 1, 48, 48)
    erase = AugmentConfig(rotation_deg=0, scale=0, shift=0, flip=0, brightness=0, contrast=0, erase_p=1.0)
    out = augment_batch(x, erase, torch.Generator().manual_seed(0))
    changed = (out != 0).float().mean(dim=(1, 2, 3))
    assert ((changed > 0.01) & (changed < 0.25)).all()
