"""Admin views of labelling: read-mostly. Queue state and annotations change only through
the services (the admin would bypass their invariants), so those are read-only here."""

from typing import Any

from django.contrib import admin

from labeling.models import Annotation, AnnotationRevision, Lease, Project, ProjectMember, Task


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False  # a count(*) over millions of rows per page view

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class MemberInline(admin.TabularInline):
    model = ProjectMember
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "dataset", "overlap", "task_count", "done_count", "created_at")
    search_fields = ("name",)
    raw_id_fields = ("dataset", "schema_revision", "tasks_job", "created_by")
    readonly_fields = ("task_count", "done_count", "schema_revision", "tasks_job")
    inlines = [MemberInline]


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ("id", "project", "item", "status", "priority", "remaining")
    list_filter = ("status",)


@admin.register(Lease)
class LeaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "task", "slot", "annotator", "leased_at", "expires_at", "end_reason")


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    list_display = ("id", "task", "slot", "annotator", "revision_count", "updated_at")


@admin.register(AnnotationRevision)
class AnnotationRevisionAdmin(ReadOnlyAdmin):
    list_display = ("id", "annotation", "number", "created_by", "created_at", "lead_time_ms")
