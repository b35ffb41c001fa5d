import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from geotriplet_assets.defs.plots import region_maps


def test_a_large_region_is_drawn_from_a_bounded_sample_with_its_full_count() -> None:
    rng = np.random.default_rng(0)
    points = pd.DataFrame(
        {
            "dataset_id": np.repeat([1, 2], [50_000, 300]),
            "lat": rng.uniform(40, 41, 50_300),
            "lon": rng.uniform(-80, -79, 50_300),
        }
    )
    figure = region_maps(points)
    large, small = figure.axes[:2]
    assert len(large.collections[0].get_offsets()) == 20_000
    assert large.get_title() == "DatasetID 1 (50,000, 20,000 shown)"
    assert len(small.collections[0].get_offsets()) == 300
    assert small.get_title() == "DatasetID 2 (300)"
    plt.close(figure)
