//! Reading FHIR packages in their published npm form (`package/…` inside a `.tgz`).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::ModelError;

/// One conformance resource file of a package, still as raw JSON bytes.
pub struct PackageFile {
    pub name: String,
    pub resource_type: String,
    pub bytes: Vec<u8>,
}

/// The `package.json` manifest of a package.
#[derive(Debug, Clone, Deserialize)]
pub struct PackageManifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub canonical: Option<String>,
    #[serde(default)]
    pub dependencies: HashMap<String, String>,
}

/// A package read into memory: its manifest and the files of the kinds we asked for.
pub struct Package {
    pub manifest: PackageManifest,
    pub files: Vec<PackageFile>,
}

#[derive(Deserialize)]
struct IndexFile {
    files: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    filename: String,
    #[serde(rename = "resourceType")]
    resource_type: String,
}

#[derive(Deserialize)]
struct ResourceTypeOnly {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
}

impl Package {
    /// Reads a package file from disk.
    pub fn read_file(path: &Path, wanted: &[&str]) -> Result<Package, ModelError> {
        let bytes =
            std::fs::read(path).map_err(|e| ModelError::Io(path.display().to_string(), e))?;
        Package::read_tgz(&bytes, wanted)
    }

    /// Reads a package from the bytes of its `.tgz`, keeping only the top-level files
    /// whose `resourceType` is one of `wanted` (all when `wanted` is empty).
    pub fn read_tgz(tgz: &[u8], wanted: &[&str]) -> Result<Package, ModelError> {
        let gz = flate2::read::GzDecoder::new(tgz);
        let mut archive = tar::Archive::new(gz);
        let mut manifest = None;
        let mut index: Option<HashMap<String, String>> = None;
        let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
        let entries = archive.entries().map_err(ModelError::Archive)?;
        for entry in entries {
            let mut entry = entry.map_err(ModelError::Archive)?;
            let path = entry
                .path()
                .map_err(ModelError::Archive)?
                .to_string_lossy()
                .into_owned();
            // Only `package/<file>.json` (or `.xml`, which some IGs ship): examples,
            // `other/` and `openapi/` are not definitions.
            let Some(name) = path.strip_prefix("package/") else {
                continue;
            };
            if name.contains('/') || !(name.ends_with(".json") || name.ends_with(".xml")) {
                continue;
            }
            let mut buf = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut buf).map_err(ModelError::Archive)?;
            if name.ends_with(".xml") {
                // Read as the JSON it stands for, with the core definitions (the XML of
                // conformance resources is that of the core types). The core package
                // itself holds no XML, so building the core tables never comes here.
                let v = crate::xml::from_xml(crate::Definitions::r4(), &buf)
                    .map_err(|e| ModelError::Xml(name.to_string(), e))?;
                buf = crate::json::to_string(&v).into_bytes();
            }
            match name {
                "package.json" => {
                    manifest = Some(
                        serde_json::from_slice(&buf)
                            .map_err(|e| ModelError::Json(name.to_string(), e))?,
                    )
                }
                ".index.json" => {
                    let idx: IndexFile = serde_json::from_slice(&buf)
                        .map_err(|e| ModelError::Json(name.to_string(), e))?;
                    index = Some(
                        idx.files
                            .into_iter()
                            .map(|f| (f.filename, f.resource_type))
                            .collect(),
                    );
                }
                _ => raw.push((name.to_string(), buf)),
            }
        }
        let manifest = manifest.ok_or(ModelError::NoManifest)?;
        let mut files = Vec::new();
        for (name, bytes) in raw {
            let resource_type = match index.as_ref().and_then(|i| i.get(&name)) {
                Some(t) => t.clone(),
                None => match serde_json::from_slice::<ResourceTypeOnly>(&bytes) {
                    Ok(ResourceTypeOnly {
                        resource_type: Some(t),
                    }) => t,
                    _ => continue,
                },
            };
            if wanted.is_empty() || wanted.contains(&resource_type.as_str()) {
                files.push(PackageFile {
                    name,
                    resource_type,
                    bytes,
                });
            }
        }
        Ok(Package { manifest, files })
    }
}
