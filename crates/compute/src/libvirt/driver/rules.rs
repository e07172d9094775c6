//! Security rules: an instance's effective rules are the nwfilter named after its domain.

use super::*;

impl Inner {
    pub(super) fn define_filter(
        &self,
        conn: &Connect,
        id: &str,
        rules: &[PacketRule],
        replace: bool,
    ) -> Result<(), DriverError> {
        let name = self.domain_name(id);
        let uuid = match conn.lookup_nwfilter_by_name(&name) {
            Ok(_) if !replace => return Ok(()),
            Ok(filter) => Some(
                filter
                    .uuid_string()
                    .map_err(|e| driver_error("filter uuid", e))?,
            ),
            Err(error) if is_missing(&error) => None,
            Err(error) => return Err(driver_error("look up filter", error)),
        };
        // Redefining a filter in use re-programs every interface that refers to it.
        conn.define_nwfilter_xml(&xml::nwfilter_xml(&name, uuid.as_deref(), rules))
            .map_err(|e| driver_error("define filter", e))?;
        Ok(())
    }

    pub(super) fn apply_rules(
        &self,
        instance_id: &str,
        rules: &[PacketRule],
    ) -> Result<(), DriverError> {
        let found = self.found(instance_id)?;
        self.define_filter(&found.conn, instance_id, rules, true)
    }
}
