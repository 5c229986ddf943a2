// docker's --format: a Go text/template subset evaluated over JSON, docker's extra template functions,
// and docker's table/json/inspect output modes. Pure code, unit-tested.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/flags.hpp"

namespace berth::cli {

// Go's missingkey template option. docker runs inspect templates over raw JSON with missingkey=error,
// and its list contexts are Go structs, where an unknown field is an error too.
enum class MissingKey { Default, Error };

// Renders a Go text/template against data. Objects act as Go maps: a missing key prints "<no value>"
// (or fails with MissingKey::Error); JSON null prints "<nil>".
// Throws UsageError("template parsing error: template: :LINE: …") for a bad template and
// Error("template: :LINE:COL: executing \"\" at <NODE>: …") when evaluation fails.
std::string render_template(std::string_view tmpl, const nlohmann::json& data,
                            MissingKey missing = MissingKey::Default);

// How a list command prints (docker's formatter.Context):
//  ""/"table": "table " + default_table_format (which may carry the "table" prefix itself),
//  "table TEMPLATE": a header row then one row per item, aligned by Go's text/tabwriter with docker's
//     parameters (minwidth 10, padding 3, spaces),
//  "json": `{{json .}}` per row,
//  anything else: the template per row, each followed by a newline.
// Like docker, surrounding spaces are trimmed and the two-character sequences \t and \n become a tab and
// a newline. headers maps a field name ("Repository") to its column title ("REPOSITORY"); the header row
// is the template rendered over that map with docker's header functions (json, upper, truncate… return
// their argument unchanged). Rows are rendered with MissingKey::Error, so they must carry every field
// (null is fine). Evaluation errors throw Error("template parsing error: …"), as docker words them.
std::string format_list(std::string_view format, std::string_view default_table_format,
                        const std::vector<nlohmann::json>& rows, const std::map<std::string, std::string>& headers);

// For inspect commands (docker's inspect.Inspect):
//  "": a JSON array of all items indented by 4 spaces, then a newline ("[]\n" when empty),
//  "json": the same array compact on one line,
//  else: the template per item (MissingKey::Error, no \t rewriting), each followed by a newline.
// docker exits 64 on a template parsing error and 1 on an evaluation error; this throws UsageError and
// Error respectively, both "template parsing error: …".
std::string format_inspect(std::string_view format, const std::vector<nlohmann::json>& items);

// Go's text/tabwriter as docker configures it: NewWriter(out, 10, 1, 3, ' ', 0). Cells end at tabs;
// a column's width is max(10, widest cell + 3); text after a line's last tab is not padded.
std::string tabwrite(std::string_view text);

// Go's encoding/json with SetEscapeHTML(false), as docker's `json` function and inspect print:
// compact when indent < 0, else indented by that many spaces. Object keys come out sorted.
std::string go_json(const nlohmann::json& value, int indent = -1);

}  // namespace berth::cli
