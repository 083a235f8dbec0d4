#pragma once
// JPEG files for the tests and the fuzz seeds (the library reads JPEG but
// never writes it): RGB, greyscale or CMYK samples through libjpeg-turbo.
#include <cstdint>
#include <string>
#include <vector>

namespace dnn_gating::testing {

/// The JPEG bytes of `samples` (width x height x components, row by row;
/// components 1 = grey, 3 = RGB, 4 = CMYK with an Adobe marker, whose
/// samples are taken as stored: inverted inks).
std::string encode_jpeg(const std::vector<uint8_t>& samples, int width, int height, int components,
                        int quality = 95, bool progressive = false);

}  // namespace dnn_gating::testing
