import datetime

from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import datetime_pb2 as _datetime_pb2
from google.type import interval_pb2 as _interval_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LineOfBusiness(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINE_OF_BUSINESS_UNSPECIFIED: _ClassVar[LineOfBusiness]
    COMMERCIAL: _ClassVar[LineOfBusiness]
    RETAIL: _ClassVar[LineOfBusiness]
LINE_OF_BUSINESS_UNSPECIFIED: LineOfBusiness
COMMERCIAL: LineOfBusiness
RETAIL: LineOfBusiness

class OperationMetadata(_message.Message):
    __slots__ = ("create_time", "end_time", "target", "verb", "status_message", "requested_cancellation", "api_version")
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    VERB_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_CANCELLATION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    target: str
    verb: str
    status_message: str
    requested_cancellation: bool
    api_version: str
    def __init__(self, create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., target: _Optional[str] = ..., verb: _Optional[str] = ..., status_message: _Optional[str] = ..., requested_cancellation: _Optional[bool] = ..., api_version: _Optional[str] = ...) -> None: ...

class BigQueryDestination(_message.Message):
    __slots__ = ("table_uri", "write_disposition")
    class WriteDisposition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        WRITE_DISPOSITION_UNSPECIFIED: _ClassVar[BigQueryDestination.WriteDisposition]
        WRITE_EMPTY: _ClassVar[BigQueryDestination.WriteDisposition]
        WRITE_TRUNCATE: _ClassVar[BigQueryDestination.WriteDisposition]
    WRITE_DISPOSITION_UNSPECIFIED: BigQueryDestination.WriteDisposition
    WRITE_EMPTY: BigQueryDestination.WriteDisposition
    WRITE_TRUNCATE: BigQueryDestination.WriteDisposition
    TABLE_URI_FIELD_NUMBER: _ClassVar[int]
    WRITE_DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    table_uri: str
    write_disposition: BigQueryDestination.WriteDisposition
    def __init__(self, table_uri: _Optional[str] = ..., write_disposition: _Optional[_Union[BigQueryDestination.WriteDisposition, str]] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("name", "create_time", "update_time", "state", "labels", "kms_key")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Instance.State]
        CREATING: _ClassVar[Instance.State]
        ACTIVE: _ClassVar[Instance.State]
        UPDATING: _ClassVar[Instance.State]
        DELETING: _ClassVar[Instance.State]
    STATE_UNSPECIFIED: Instance.State
    CREATING: Instance.State
    ACTIVE: Instance.State
    UPDATING: Instance.State
    DELETING: Instance.State
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    KMS_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    state: Instance.State
    labels: _containers.ScalarMap[str, str]
    kms_key: str
    def __init__(self, name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[Instance.State, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., kms_key: _Optional[str] = ...) -> None: ...

class ImportRegisteredPartiesResponse(_message.Message):
    __slots__ = ("parties_added", "parties_removed", "parties_total", "parties_failed_to_remove", "parties_uptiered", "parties_downtiered", "parties_failed_to_downtier")
    PARTIES_ADDED_FIELD_NUMBER: _ClassVar[int]
    PARTIES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    PARTIES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FAILED_TO_REMOVE_FIELD_NUMBER: _ClassVar[int]
    PARTIES_UPTIERED_FIELD_NUMBER: _ClassVar[int]
    PARTIES_DOWNTIERED_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FAILED_TO_DOWNTIER_FIELD_NUMBER: _ClassVar[int]
    parties_added: int
    parties_removed: int
    parties_total: int
    parties_failed_to_remove: int
    parties_uptiered: int
    parties_downtiered: int
    parties_failed_to_downtier: int
    def __init__(self, parties_added: _Optional[int] = ..., parties_removed: _Optional[int] = ..., parties_total: _Optional[int] = ..., parties_failed_to_remove: _Optional[int] = ..., parties_uptiered: _Optional[int] = ..., parties_downtiered: _Optional[int] = ..., parties_failed_to_downtier: _Optional[int] = ...) -> None: ...

class ExportRegisteredPartiesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportModelMetadataResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportEngineConfigMetadataResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportPredictionResultMetadataResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportBacktestResultMetadataResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "create_time", "update_time", "labels", "table_specs", "state", "date_range", "time_zone")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Dataset.State]
        CREATING: _ClassVar[Dataset.State]
        ACTIVE: _ClassVar[Dataset.State]
        UPDATING: _ClassVar[Dataset.State]
        DELETING: _ClassVar[Dataset.State]
    STATE_UNSPECIFIED: Dataset.State
    CREATING: Dataset.State
    ACTIVE: Dataset.State
    UPDATING: Dataset.State
    DELETING: Dataset.State
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TableSpecsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TABLE_SPECS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATE_RANGE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    name: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    table_specs: _containers.ScalarMap[str, str]
    state: Dataset.State
    date_range: _interval_pb2.Interval
    time_zone: _datetime_pb2.TimeZone
    def __init__(self, name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., table_specs: _Optional[_Mapping[str, str]] = ..., state: _Optional[_Union[Dataset.State, str]] = ..., date_range: _Optional[_Union[_interval_pb2.Interval, _Mapping]] = ..., time_zone: _Optional[_Union[_datetime_pb2.TimeZone, _Mapping]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "create_time", "update_time", "labels", "state", "engine_version", "engine_config", "primary_dataset", "end_time", "line_of_business")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Model.State]
        CREATING: _ClassVar[Model.State]
        ACTIVE: _ClassVar[Model.State]
        UPDATING: _ClassVar[Model.State]
        DELETING: _ClassVar[Model.State]
    STATE_UNSPECIFIED: Model.State
    CREATING: Model.State
    ACTIVE: Model.State
    UPDATING: Model.State
    DELETING: Model.State
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_DATASET_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LINE_OF_BUSINESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    state: Model.State
    engine_version: str
    engine_config: str
    primary_dataset: str
    end_time: _timestamp_pb2.Timestamp
    line_of_business: LineOfBusiness
    def __init__(self, name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[_Union[Model.State, str]] = ..., engine_version: _Optional[str] = ..., engine_config: _Optional[str] = ..., primary_dataset: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., line_of_business: _Optional[_Union[LineOfBusiness, str]] = ...) -> None: ...

class EngineConfig(_message.Message):
    __slots__ = ("name", "create_time", "update_time", "labels", "state", "engine_version", "tuning", "performance_target", "line_of_business", "hyperparameter_source_type", "hyperparameter_source")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[EngineConfig.State]
        CREATING: _ClassVar[EngineConfig.State]
        ACTIVE: _ClassVar[EngineConfig.State]
        UPDATING: _ClassVar[EngineConfig.State]
        DELETING: _ClassVar[EngineConfig.State]
    STATE_UNSPECIFIED: EngineConfig.State
    CREATING: EngineConfig.State
    ACTIVE: EngineConfig.State
    UPDATING: EngineConfig.State
    DELETING: EngineConfig.State
    class HyperparameterSourceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        HYPERPARAMETER_SOURCE_TYPE_UNSPECIFIED: _ClassVar[EngineConfig.HyperparameterSourceType]
        TUNING: _ClassVar[EngineConfig.HyperparameterSourceType]
        INHERITED: _ClassVar[EngineConfig.HyperparameterSourceType]
    HYPERPARAMETER_SOURCE_TYPE_UNSPECIFIED: EngineConfig.HyperparameterSourceType
    TUNING: EngineConfig.HyperparameterSourceType
    INHERITED: EngineConfig.HyperparameterSourceType
    class Tuning(_message.Message):
        __slots__ = ("primary_dataset", "end_time")
        PRIMARY_DATASET_FIELD_NUMBER: _ClassVar[int]
        END_TIME_FIELD_NUMBER: _ClassVar[int]
        primary_dataset: str
        end_time: _timestamp_pb2.Timestamp
        def __init__(self, primary_dataset: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
    class PerformanceTarget(_message.Message):
        __slots__ = ("party_investigations_per_period_hint",)
        PARTY_INVESTIGATIONS_PER_PERIOD_HINT_FIELD_NUMBER: _ClassVar[int]
        party_investigations_per_period_hint: int
        def __init__(self, party_investigations_per_period_hint: _Optional[int] = ...) -> None: ...
    class HyperparameterSource(_message.Message):
        __slots__ = ("source_engine_config", "source_engine_version")
        SOURCE_ENGINE_CONFIG_FIELD_NUMBER: _ClassVar[int]
        SOURCE_ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
        source_engine_config: str
        source_engine_version: str
        def __init__(self, source_engine_config: _Optional[str] = ..., source_engine_version: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TUNING_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_TARGET_FIELD_NUMBER: _ClassVar[int]
    LINE_OF_BUSINESS_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETER_SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    state: EngineConfig.State
    engine_version: str
    tuning: EngineConfig.Tuning
    performance_target: EngineConfig.PerformanceTarget
    line_of_business: LineOfBusiness
    hyperparameter_source_type: EngineConfig.HyperparameterSourceType
    hyperparameter_source: EngineConfig.HyperparameterSource
    def __init__(self, name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[_Union[EngineConfig.State, str]] = ..., engine_version: _Optional[str] = ..., tuning: _Optional[_Union[EngineConfig.Tuning, _Mapping]] = ..., performance_target: _Optional[_Union[EngineConfig.PerformanceTarget, _Mapping]] = ..., line_of_business: _Optional[_Union[LineOfBusiness, str]] = ..., hyperparameter_source_type: _Optional[_Union[EngineConfig.HyperparameterSourceType, str]] = ..., hyperparameter_source: _Optional[_Union[EngineConfig.HyperparameterSource, _Mapping]] = ...) -> None: ...

class PredictionResult(_message.Message):
    __slots__ = ("name", "create_time", "update_time", "labels", "state", "dataset", "model", "end_time", "prediction_periods", "outputs", "line_of_business")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[PredictionResult.State]
        CREATING: _ClassVar[PredictionResult.State]
        ACTIVE: _ClassVar[PredictionResult.State]
        UPDATING: _ClassVar[PredictionResult.State]
        DELETING: _ClassVar[PredictionResult.State]
    STATE_UNSPECIFIED: PredictionResult.State
    CREATING: PredictionResult.State
    ACTIVE: PredictionResult.State
    UPDATING: PredictionResult.State
    DELETING: PredictionResult.State
    class Outputs(_message.Message):
        __slots__ = ("prediction_destination", "explainability_destination")
        PREDICTION_DESTINATION_FIELD_NUMBER: _ClassVar[int]
        EXPLAINABILITY_DESTINATION_FIELD_NUMBER: _ClassVar[int]
        prediction_destination: BigQueryDestination
        explainability_destination: BigQueryDestination
        def __init__(self, prediction_destination: _Optional[_Union[BigQueryDestination, _Mapping]] = ..., explainability_destination: _Optional[_Union[BigQueryDestination, _Mapping]] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_PERIODS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LINE_OF_BUSINESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    state: PredictionResult.State
    dataset: str
    model: str
    end_time: _timestamp_pb2.Timestamp
    prediction_periods: int
    outputs: PredictionResult.Outputs
    line_of_business: LineOfBusiness
    def __init__(self, name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[_Union[PredictionResult.State, str]] = ..., dataset: _Optional[str] = ..., model: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prediction_periods: _Optional[int] = ..., outputs: _Optional[_Union[PredictionResult.Outputs, _Mapping]] = ..., line_of_business: _Optional[_Union[LineOfBusiness, str]] = ...) -> None: ...

class BacktestResult(_message.Message):
    __slots__ = ("name", "create_time", "update_time", "labels", "state", "dataset", "model", "end_time", "backtest_periods", "performance_target", "line_of_business")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[BacktestResult.State]
        CREATING: _ClassVar[BacktestResult.State]
        ACTIVE: _ClassVar[BacktestResult.State]
        UPDATING: _ClassVar[BacktestResult.State]
        DELETING: _ClassVar[BacktestResult.State]
    STATE_UNSPECIFIED: BacktestResult.State
    CREATING: BacktestResult.State
    ACTIVE: BacktestResult.State
    UPDATING: BacktestResult.State
    DELETING: BacktestResult.State
    class PerformanceTarget(_message.Message):
        __slots__ = ("party_investigations_per_period_hint",)
        PARTY_INVESTIGATIONS_PER_PERIOD_HINT_FIELD_NUMBER: _ClassVar[int]
        party_investigations_per_period_hint: int
        def __init__(self, party_investigations_per_period_hint: _Optional[int] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BACKTEST_PERIODS_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_TARGET_FIELD_NUMBER: _ClassVar[int]
    LINE_OF_BUSINESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    state: BacktestResult.State
    dataset: str
    model: str
    end_time: _timestamp_pb2.Timestamp
    backtest_periods: int
    performance_target: BacktestResult.PerformanceTarget
    line_of_business: LineOfBusiness
    def __init__(self, name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[_Union[BacktestResult.State, str]] = ..., dataset: _Optional[str] = ..., model: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backtest_periods: _Optional[int] = ..., performance_target: _Optional[_Union[BacktestResult.PerformanceTarget, _Mapping]] = ..., line_of_business: _Optional[_Union[LineOfBusiness, str]] = ...) -> None: ...

class CreateInstanceRequest(_message.Message):
    __slots__ = ("parent", "instance_id", "instance", "request_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    instance_id: str
    instance: Instance
    request_id: str
    def __init__(self, parent: _Optional[str] = ..., instance_id: _Optional[str] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateInstanceRequest(_message.Message):
    __slots__ = ("update_mask", "instance", "request_id")
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    update_mask: _field_mask_pb2.FieldMask
    instance: Instance
    request_id: str
    def __init__(self, update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteInstanceRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
