"""REST endpoints under /api/v1/ for datasets, items, imports and assets."""

from django.urls import path, register_converter

from datasets import api


class Sha256Converter:
    regex = "[0-9a-f]{64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(Sha256Converter, "sha256")

urlpatterns = [
    path("datasets/", api.DatasetListApi.as_view(), name="api-dataset-list"),
    path("datasets/<int:dataset_id>", api.DatasetDetailApi.as_view(), name="api-dataset-detail"),
    path("datasets/<int:dataset_id>/items/", api.ItemListApi.as_view(), name="api-item-list"),
    path("datasets/<int:dataset_id>/imports/", api.ImportListApi.as_view(), name="api-import-list"),
    path("imports/<int:import_id>", api.ImportDetailApi.as_view(), name="api-import-detail"),
    path(
        "imports/<int:import_id>/rejected",
        api.ImportRejectedApi.as_view(),
        name="api-import-rejected",
    ),
    path("assets/<sha256:sha256>", api.AssetDetailApi.as_view(), name="api-asset-detail"),
    path(
        "datasets/<int:dataset_id>/versions",
        api.DatasetVersionListApi.as_view(),
        name="api-dataset-versions",
    ),
    path("versions/<sha256:version_id>", api.VersionDetailApi.as_view(), name="api-version"),
    path("versions/<sha256:version_id>/tags", api.VersionTagApi.as_view(), name="api-version-tags"),
    path(
        "versions/<sha256:version_id>/parquet",
        api.VersionParquetApi.as_view(),
        name="api-version-parquet",
    ),
    path(
        "versions/<sha256:version_id>/manifest",
        api.VersionManifestApi.as_view(),
        name="api-version-manifest",
    ),
    path(
        "versions/<sha256:version_id>/diff/<sha256:other_id>",
        api.VersionDiffApi.as_view(),
        name="api-version-diff",
    ),
    path(
        "versions/<sha256:version_id>/assets",
        api.VersionAssetsApi.as_view(),
        name="api-version-assets",
    ),
    path(
        "versions/<sha256:version_id>/assets/<sha256:sha256>",
        api.VersionAssetRedirectApi.as_view(),
        name="api-version-asset",
    ),
    path(
        "versions/<sha256:version_id>/exports",
        api.VersionExportListApi.as_view(),
        name="api-version-exports",
    ),
    path("exports/<int:export_id>", api.ExportDetailApi.as_view(), name="api-export-detail"),
    path(
        "datasets/<int:dataset_id>/exports",
        api.DatasetExportApi.as_view(),
        name="api-dataset-exports",
    ),
    path("export-formats", api.ExportFormatListApi.as_view(), name="api-export-formats"),
]
