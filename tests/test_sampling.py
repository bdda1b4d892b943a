import torch

from wsolbench.data.sampling import EpochSampler, SeededAugmentation, mix_seed


def test_order_depends_only_on_seed_and_epoch_and_covers_everything():
    a, b = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    assert sorted(i for _, i in a) == list(range(10))
    b.set_epoch(3)
    assert [i for _, i in a] != [i for _, i in b]


def test_resume_skips_exactly_the_done_items():
    s = EpochSampler(10, seed=0)
    s.set_epoch(1)
    whole = list(s)
    s.set_epoch(1, start=4)
    assert list(s) == whole[4:] and len(s) == 6


def test_ranks_partition_a_padded_permutation():
    ranks = [EpochSampler(7, seed=1, rank=r, world_size=2) for r in range(2)]
    parts = [r.order(0) for r in ranks]
    assert len(parts[0]) == len(parts[1]) == 4
    assert set(parts[0]) | set(parts[1]) == set(range(7))


class _Noise:
    def __len__(self):
        return 5

    def __getitem__(self, index):
        return torch.rand(3)


def test_augmentation_is_a_function_of_seed_epoch_and_index_and_leaves_global_rng_alone():
    ds = SeededAugmentation(_Noise(), seed=7)
    torch.manual_seed(0)
    first = ds[(1, 2)]
    state = torch.get_rng_state()
    torch.rand(100)  # anything else the run does with the global RNG
    assert torch.equal(ds[(1, 2)], first)
    assert not torch.equal(ds[(2, 2)], first)
    torch.set_rng_state(state)
    ds[(0, 0)]
    assert torch.equal(torch.get_rng_state(), state)
    assert mix_seed(1, 2) != mix_seed(2, 1)
