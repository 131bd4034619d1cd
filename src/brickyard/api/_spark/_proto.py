"""The Spark Connect messages Brickyard reads and writes, declared here by field number.

Spark Connect is gRPC with protobuf messages (package ``spark.connect``). A protobuf message on the wire is
only field numbers and values, so the server needs the numbers and types of the fields it uses, not the
client's generated code: this module declares that subset and builds message classes from it at import
(``google.protobuf``'s descriptor pool, no ``protoc`` step). Fields the client sends that are not declared
here are kept as unknown fields and ignored; oneofs are plain optional fields (the same bytes on the
wire). Enums are declared as ``int32`` (the same varint).

Names are shortened where nesting does not matter on the wire (``ExecutePlanResponse.ArrowBatch`` is
``ArrowBatch``); the gRPC method paths (``/spark.connect.SparkConnectService/ExecutePlan``) are what must
match exactly, and those are in :mod:`._service`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "brickyard.spark_connect"
_SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "float": descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
    "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
}

# name -> fields as "number name type" ("*type" is repeated); types are scalars or messages of this list
MESSAGES: dict[str, list[str]] = {
    "UserContext": ["1 user_id string", "2 user_name string"],
    "Plan": ["1 root Relation", "2 command Command"],
    "Command": ["5 sql_command SqlCommand"],
    "SqlCommand": ["1 sql string", "2 args *LiteralEntry", "3 pos_args *Literal", "4 named_arguments *ExpressionEntry",
                   "5 pos_arguments *Expression", "6 input Relation"],
    "LiteralEntry": ["1 key string", "2 value Literal"],
    "ExpressionEntry": ["1 key string", "2 value Expression"],
    "ReattachOptions": ["1 reattachable bool"],
    "RequestOption": ["1 reattach_options ReattachOptions"],
    "ExecutePlanRequest": ["1 session_id string", "2 user_context UserContext", "3 plan Plan", "4 client_type string",
                           "5 request_options *RequestOption", "6 operation_id string", "7 tags *string",
                           "8 client_observed_server_side_session_id string"],
    "ArrowBatch": ["1 row_count int64", "2 data bytes", "3 start_offset int64"],
    "SqlCommandResult": ["1 relation Relation"],
    "ResultComplete": [],
    "ExecutePlanResponse": ["1 session_id string", "2 arrow_batch ArrowBatch", "5 sql_command_result SqlCommandResult",
                            "7 schema DataType", "12 operation_id string", "13 response_id string",
                            "14 result_complete ResultComplete", "15 server_side_session_id string"],
    "Empty": [],
    "PlanHolder": ["1 plan Plan"],
    "ExplainRequest": ["1 plan Plan", "2 explain_mode int32"],
    "DdlParseRequest": ["1 ddl_string string"],
    "AnalyzePlanRequest": ["1 session_id string", "2 user_context UserContext", "3 client_type string",
                           "4 schema PlanHolder", "5 explain ExplainRequest", "6 tree_string PlanHolder",
                           "7 is_local PlanHolder", "8 is_streaming PlanHolder", "10 spark_version Empty",
                           "11 ddl_parse DdlParseRequest", "17 client_observed_server_side_session_id string"],
    "SchemaResult": ["1 schema DataType"],
    "StringResult": ["1 text string"],
    "BoolResult": ["1 value bool"],
    "SparkVersion": ["1 version string", "800 dbr_version string"],
    "DdlParseResult": ["1 parsed DataType"],
    "AnalyzePlanResponse": ["1 session_id string", "2 schema SchemaResult", "3 explain StringResult",
                            "4 tree_string StringResult", "5 is_local BoolResult", "6 is_streaming BoolResult",
                            "8 spark_version SparkVersion", "9 ddl_parse DdlParseResult",
                            "15 server_side_session_id string"],
    "KeyValue": ["1 key string", "2 value string"],
    "Keys": ["1 keys *string"],
    "Pairs": ["1 pairs *KeyValue"],
    "Prefix": ["1 prefix string"],
    "ConfigOperation": ["1 set Pairs", "2 get Keys", "3 get_with_default Pairs", "4 get_option Keys",
                        "5 get_all Prefix", "6 unset Keys", "7 is_modifiable Keys"],
    "ConfigRequest": ["1 session_id string", "2 user_context UserContext", "3 operation ConfigOperation",
                      "4 client_type string", "8 client_observed_server_side_session_id string"],
    "ConfigResponse": ["1 session_id string", "2 pairs *KeyValue", "3 warnings *string",
                       "4 server_side_session_id string"],
    "InterruptRequest": ["1 session_id string", "2 user_context UserContext", "4 interrupt_type int32",
                         "5 operation_tag string", "6 operation_id string"],
    "InterruptResponse": ["1 session_id string", "2 interrupted_ids *string", "3 server_side_session_id string"],
    "ReattachExecuteRequest": ["1 session_id string", "2 user_context UserContext", "3 operation_id string",
                               "5 last_response_id string"],
    "ReleaseExecuteRequest": ["1 session_id string", "2 user_context UserContext", "3 operation_id string"],
    "ReleaseExecuteResponse": ["1 session_id string", "2 operation_id string", "3 server_side_session_id string"],
    "ReleaseSessionRequest": ["1 session_id string", "2 user_context UserContext"],
    "ReleaseSessionResponse": ["1 session_id string", "2 server_side_session_id string"],
    "FetchErrorDetailsRequest": ["1 session_id string", "2 user_context UserContext", "3 error_id string"],
    "FetchErrorDetailsResponse": ["3 server_side_session_id string", "4 session_id string"],
    # relations
    "Relation": ["1 common RelationCommon", "2 read Read", "3 project Project", "4 filter Filter", "7 sort Sort",
                 "8 limit Limit", "9 aggregate Aggregate", "10 sql SQL", "11 local_relation LocalRelation",
                 "13 offset Offset", "15 range Range", "18 to_df ToDF", "20 show_string ShowString"],
    "RelationCommon": ["1 source_info string", "2 plan_id int64"],
    "Read": ["1 named_table NamedTable", "2 data_source DataSource", "3 is_streaming bool"],
    "NamedTable": ["1 unparsed_identifier string"],
    "DataSource": ["1 format string"],
    "SQL": ["1 query string", "2 args *LiteralEntry", "3 pos_args *Literal", "4 named_arguments *ExpressionEntry",
            "5 pos_arguments *Expression"],
    "LocalRelation": ["1 data bytes", "2 schema string"],
    "Limit": ["1 input Relation", "2 limit int32"],
    "Offset": ["1 input Relation", "2 offset int32"],
    "Project": ["1 input Relation", "3 expressions *Expression"],
    "Filter": ["1 input Relation", "2 condition Expression"],
    "Sort": ["1 input Relation", "2 order *SortOrder"],
    "Aggregate": ["1 input Relation", "2 group_type int32", "3 grouping_expressions *Expression",
                  "4 aggregate_expressions *Expression"],
    "Range": ["1 start int64", "2 end int64", "3 step int64"],
    "ToDF": ["1 input Relation", "2 column_names *string"],
    "ShowString": ["1 input Relation", "2 num_rows int32", "3 truncate int32", "4 vertical bool"],
    # expressions
    "Expression": ["1 literal Literal", "2 unresolved_attribute UnresolvedAttribute",
                   "3 unresolved_function UnresolvedFunction", "4 expression_string ExpressionString",
                   "5 unresolved_star UnresolvedStar", "6 alias Alias", "9 sort_order SortOrder"],
    "Literal": ["1 null DataType", "2 binary bytes", "3 boolean bool", "4 byte int32", "5 short int32",
                "6 integer int32", "7 long int64", "10 float float", "11 double double", "12 decimal Decimal",
                "13 string string", "16 date int32", "17 timestamp int64", "18 timestamp_ntz int64",
                "22 array LiteralArray"],
    "Decimal": ["1 value string", "2 precision int32", "3 scale int32"],
    "LiteralArray": ["1 element_type DataType", "2 elements *Literal"],
    "UnresolvedAttribute": ["1 unparsed_identifier string"],
    "UnresolvedFunction": ["1 function_name string", "2 arguments *Expression", "3 is_distinct bool"],
    "ExpressionString": ["1 expression string"],
    "UnresolvedStar": ["1 unparsed_target string"],
    "Alias": ["1 expr Expression", "2 name *string"],
    "SortOrder": ["1 child Expression", "2 direction int32", "3 null_ordering int32"],
    # types (DataType's kinds: each holds only type_variation_reference (1), or its parts)
    "DataType": ["1 null Kind", "2 binary Kind", "3 boolean Kind", "4 byte Kind", "5 short Kind", "6 integer Kind",
                 "7 long Kind", "8 float Kind", "9 double Kind", "10 decimal DecimalType", "11 string Kind",
                 "14 date Kind", "15 timestamp Kind", "16 timestamp_ntz Kind", "20 array ArrayType",
                 "21 struct StructType", "22 map MapType"],
    "Kind": ["1 type_variation_reference int32"],
    "DecimalType": ["1 scale int32", "2 precision int32"],
    "StructField": ["1 name string", "2 data_type DataType", "3 nullable bool"],
    "StructType": ["1 fields *StructField"],
    "ArrayType": ["1 element_type DataType", "2 contains_null bool"],
    "MapType": ["1 key_type DataType", "2 value_type DataType", "3 value_contains_null bool"],
}


def _build() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(name="brickyard_spark_connect.proto", package=PACKAGE,
                                              syntax="proto3")
    for name, fields in MESSAGES.items():
        message = file.message_type.add(name=name)
        for spec in fields:
            number, field_name, typ = spec.split()
            repeated = typ.startswith("*")
            typ = typ.lstrip("*")
            field = message.field.add(name=field_name, number=int(number))
            field.label = (descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated
                           else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            if typ in _SCALARS:
                field.type = _SCALARS[typ]
                field.proto3_optional = not repeated  # presence: HasField works on scalars too
            else:
                if typ not in MESSAGES:
                    raise ValueError(f"{name}.{field_name}: unknown message {typ}")
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{typ}"
        # proto3 optional fields each sit in a synthetic oneof of their own
        for field in message.field:
            if field.proto3_optional:
                field.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{field.name}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in MESSAGES}


M = _build()
