"""The retrieval report: the published bundle's quality on the test split, measured as the
service answers."""

import json

import dagster as dg
import pandas as pd

from geotriplet_assets.catalogue.image_catalog import ImageFiles, read_catalog
from geotriplet_assets.defs.metadata import preview_table
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.defs.serving import search_index
from geotriplet_assets.evaluation.retrieval_report import build_retrieval_report
from geotriplet_assets.paths import atomic_path


@dg.asset(
    deps=[search_index],
    group_name="serving",
    kinds={"faiss", "onnx"},
    description=(
        "Retrieval quality of the published bundle on the test split, computed through the "
        "bundle's search code exactly as `POST /similar` answers: recall@k and mAP@R "
        "against the whole index (the query image itself excluded), localisation error of the "
        "top hit, and a sample of test images queried through the uploaded-image path "
        "(decode + ONNX model) to show it agrees with the indexed vectors; and POST /locate's "
        "position estimate against the top hit's: median and p90 error, shares within 25 m, "
        "100 m and 1 km, and how often the truth lies within its uncertainty."
    ),
)
def retrieval_report(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config, layout = settings.config, settings.layout
    catalog = read_catalog(layout.catalog_dir).images
    report = build_retrieval_report(
        layout.bundles_dir,
        image_paths=ImageFiles(catalog, config.input_dir),
        upload_queries=config.serving.report_upload_queries,
        max_queries=config.serving.report_queries,
        seed=config.train.seed,
        recall_radius_m=config.train.recall_radius_m,
    )
    with atomic_path(layout.retrieval_report_path) as temporary:
        temporary.write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")
    if report.queries:
        context.log.info(
            f"bundle {report.bundle_version}: test recall@1 {report.recall_at[1]:.3f} over "
            f"{report.queries} queries"
        )
    else:
        context.log.warning(
            f"bundle {report.bundle_version}: no test image whose building has another view, "
            "so nothing could be measured (too few targets for the splits' buffer?)"
        )
    return dg.MaterializeResult(
        metadata={
            "bundle_version": report.bundle_version,
            "path": dg.MetadataValue.path(str(layout.retrieval_report_path)),
            "queries": report.queries,
            "eligible_queries": report.eligible_queries,
            **{f"recall_at_{k}": value for k, value in report.recall_at.items()},
            **{
                f"recall_at_{k}_{report.recall_radius_m:g}m": value
                for k, value in report.recall_at_radius.items()
            },
            **{
                f"{name.replace('@', '_at_')}_ci95": dg.MetadataValue.json(list(bounds))
                for name, bounds in report.intervals.items()
                if name in ("recall@1", "map@r")
            },
            "map_at_r": report.map_at_r,
            "median_error_m": report.median_error_m,
            "p90_error_m": report.p90_error_m,
            "upload_queries": report.upload_queries,
            "upload_min_cosine": report.upload_min_cosine,
            "upload_top1_agreement": report.upload_top1_agreement,
            **{f"locate_{name}": value for name, value in report.locate.items()},
            **{f"top1_{name}": value for name, value in report.top1_location.items()},
            "summary": preview_table(pd.DataFrame([report.summary_row()]), rows=1),
        }
    )


@dg.asset_check(
    asset=retrieval_report,
    description="Warns when the test split has no building with two views, so that the "
    "report could measure nothing (a tiny data set, or a buffer that excluded the rest).",
)
def retrieval_report_measured_test_queries(settings: GeoTripletSettings) -> dg.AssetCheckResult:
    report = json.loads(settings.layout.retrieval_report_path.read_text(encoding="utf-8"))
    return dg.AssetCheckResult(
        passed=report["queries"] > 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "queries": report["queries"],
            "test_images_without_another_view": report["skipped_single_image_buildings"],
        },
    )
