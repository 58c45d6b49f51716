from django.contrib import admin

from datasets.models import Asset, Dataset, Item


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("sha256", "media_type", "size", "width", "height", "created_at")
    list_filter = ("media_type",)
    search_fields = ("sha256",)
    show_full_result_count = False  # a count(*) over millions of assets per page view


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "created_by", "created_at")
    list_filter = ("kind",)
    search_fields = ("name",)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "external_id", "split", "created_at")
    list_filter = ("split",)
    raw_id_fields = ("dataset", "asset")
    show_full_result_count = False
